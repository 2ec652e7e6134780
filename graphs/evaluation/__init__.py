"""The evaluation harness behind ``ttc eval``: strategies over a data set at a grid of budgets.

Strategies come in two kinds (:func:`graphs.registry.StrategySpec.pooled`).

- **Pooled** (``vote``, ``filter-vote``, ``best-of-n``, ``weighted-best-of-n``, and ``pass@k``
  as an oracle): as in search-and-learn, each question is sampled *once* with ``M`` = the
  largest budget, through the Vote graph, and every sample is judged once by each judge the
  strategies need, with the node kinds the graphs use. Accuracy at every budget ``k <= M`` is
  then the expectation over all ``k``-subsets of the pool: exact for Vote, Filter-Vote and pass@k
  (:mod:`graphs.lab.scaling`), by enumeration of the subsets (or a fixed-seed sample of them when
  there are too many) for the Best-of-N family, whose choice is made by the same functions the
  graphs use. The cost of a budget is the expected cost of its subset.
- **Direct** (every other registered strategy: the searches, ``revision``, ``mix``, yours): one
  graph run per question and budget.

Modules: :mod:`~graphs.evaluation.store` (the resumable SQLite store), :mod:`~.plan` (what runs,
under which keys), :mod:`~.run` (running a plan), :mod:`~.results` (exact expectations and
bootstrap intervals), :mod:`~.report` (tables and plots), :mod:`~.selection` (compute-optimal
selection), :mod:`~.datasets` and :mod:`~.tasks` (the questions).
"""

from graphs.evaluation.plan import (
    FILTER_SCORER,
    EvalPlan,
    known,
    method_of,
    options_key,
    pending,
    scorer_key,
    store_settings,
)
from graphs.evaluation.report import format_table, plot_results, write_outputs
from graphs.evaluation.results import Results, prefix_accuracy, results, subset_selection_accuracy
from graphs.evaluation.run import Progress, evaluate, progress_total
from graphs.evaluation.store import EvalStore

__all__ = [
    "FILTER_SCORER",
    "EvalPlan",
    "EvalStore",
    "Progress",
    "Results",
    "evaluate",
    "format_table",
    "known",
    "method_of",
    "options_key",
    "pending",
    "plot_results",
    "prefix_accuracy",
    "progress_total",
    "results",
    "scorer_key",
    "store_settings",
    "subset_selection_accuracy",
    "write_outputs",
]
