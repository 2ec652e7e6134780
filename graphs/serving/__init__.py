"""The doors agent apps already use, in front of any strategy (built-in or registered):

- :mod:`graphs.serving.strategy`: the core they share: :class:`StrategyConfig` (a strategy, its
  size and options, sampling), :class:`StrategyRunner` (compiled once, run per question, progress
  events then a :class:`StrategyResult` whose usage is the whole run's ledger);
- :mod:`graphs.serving.openai_api`: an OpenAI-compatible HTTP server (``ttc gateway``);
- :mod:`graphs.serving.chat_model`: a LangChain chat model backed by a strategy;
- :mod:`graphs.serving.platform`: the graphs ``langgraph.json`` gives LangGraph Server.
"""

from graphs.serving.chat_model import StrategyChatModel
from graphs.serving.strategy import (
    StrategyConfig,
    StrategyEvent,
    StrategyFailed,
    StrategyResult,
    StrategyRunner,
    describe_event,
    failure_status,
    question_of,
    result_of,
)

__all__ = [
    "StrategyChatModel",
    "StrategyConfig",
    "StrategyEvent",
    "StrategyFailed",
    "StrategyResult",
    "StrategyRunner",
    "describe_event",
    "failure_status",
    "question_of",
    "result_of",
]
