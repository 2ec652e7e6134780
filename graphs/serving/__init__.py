"""The doors agent apps already use, in front of any strategy (built-in or registered):

- :mod:`graphs.serving.strategy`: the core they share: :class:`StrategyConfig` (a strategy, its
  size and options, sampling), :class:`StrategyRunner` (compiled once, run per question, progress
  events then a :class:`StrategyResult` whose usage is the whole run's ledger);
- :mod:`graphs.serving.openai_api`: an OpenAI-compatible HTTP server (``ttc gateway``);
- :mod:`graphs.serving.chat_model`: a LangChain chat model backed by a strategy;
- :mod:`graphs.serving.platform`: the graphs ``langgraph.json`` gives LangGraph Server.
"""

from graphs.serving.chat_model import StrategyChatModel
from graphs.serving.platform import (
    OpenLLM,
    PlatformInput,
    PlatformOutput,
    PlatformState,
    ServerContext,
    build_platform_graph,
    platform_graph,
)
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
    "OpenLLM",
    "PlatformInput",
    "PlatformOutput",
    "PlatformState",
    "ServerContext",
    "StrategyChatModel",
    "StrategyConfig",
    "StrategyEvent",
    "StrategyFailed",
    "StrategyResult",
    "StrategyRunner",
    "build_platform_graph",
    "describe_event",
    "failure_status",
    "platform_graph",
    "question_of",
    "result_of",
]
