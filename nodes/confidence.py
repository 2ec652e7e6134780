"""Token and trace confidence from an endpoint's top-k token logprobs (DeepConf, Fu et al. 2025).

A token's confidence is the negative mean of its top-``k`` logprobs, ``C_i = −(1/k) Σ_j log P_i(j)``:
large when the model put its mass on one token (the others' logprobs are very negative), small
when it hesitated. A trace's confidence is built from the means of sliding *groups* of ``window``
tokens, as in the paper and its reference code (``facebookresearch/deepconf``, ``utils.py``):

- ``mean``: the mean token confidence (DeepConf's "average trace confidence");
- ``lowest``: the lowest group mean (the online rule stops a trace when a group falls below a
  threshold, so a finished trace's lowest group is what online DeepConf compares);
- ``bottom10``: the mean of the lowest 10% of group means;
- ``tail``: the mean over the last ``window`` tokens.

A trace shorter than the window is one group (its mean), as in the reference code.

Example:
    >>> confs = [2.0, 2.0, 0.5, 2.0, 2.0, 2.0]
    >>> group_confidences(confs, 2)
    [2.0, 1.25, 1.25, 2.0, 2.0]
    >>> trace_confidence(confs, "lowest", window=2), trace_confidence(confs, "tail", window=2)
    (1.25, 2.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal, get_args

from nodes.errors import ConfigError

__all__ = [
    "MEASURES",
    "ConfidenceMeasure",
    "GroupMonitor",
    "group_confidences",
    "keep_most_confident",
    "percentile",
    "token_confidences",
    "trace_confidence",
]

ConfidenceMeasure = Literal["mean", "lowest", "bottom10", "tail"]
MEASURES: tuple[str, ...] = get_args(ConfidenceMeasure)

_FLOOR = -100.0  # a logprob of -inf (vLLM sends -9999.0 or -inf) counts as this, so one token cannot dominate


def token_confidences(logprobs: Any, k: int | None = None) -> list[float]:
    """Each generated token's confidence from an OpenAI-style ``choice.logprobs`` (``{"content":
    [{"token", "logprob", "top_logprobs": [{"logprob"}, ...]}, ...]}``), using its first ``k`` top
    logprobs (all given when ``k`` is None). A token without top logprobs gets its own logprob's
    negation; an absent ``logprobs`` gives ``[]``."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [c for entry in content or [] if (c := _token_confidence(entry, k)) is not None]


def _token_confidence(entry: Any, k: int | None) -> float | None:
    if not isinstance(entry, dict):
        return None
    tops = [t.get("logprob") for t in entry.get("top_logprobs") or [] if isinstance(t, dict)][:k]
    values = [max(float(v), _FLOOR) for v in tops if isinstance(v, int | float) and not math.isnan(v)]
    if not values:
        own = entry.get("logprob")
        return -max(float(own), _FLOOR) if isinstance(own, int | float) else None
    return -sum(values) / len(values)


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """The means of every ``window`` consecutive tokens (one mean when the trace is shorter)."""
    if window < 1:
        raise ConfigError("a confidence window is at least 1 token")
    if not confidences:
        return []
    if len(confidences) <= window:
        return [sum(confidences) / len(confidences)]
    out, total = [], sum(confidences[:window])
    out.append(total / window)
    for i in range(window, len(confidences)):
        total += confidences[i] - confidences[i - window]
        out.append(total / window)
    return out


def trace_confidence(
    confidences: Sequence[float], measure: ConfidenceMeasure = "bottom10", *, window: int = 2048, bottom: float = 0.1
) -> float | None:
    """A trace's confidence by ``measure`` (see the module docstring); None for an empty trace."""
    if not confidences:
        return None
    if measure == "mean":
        return sum(confidences) / len(confidences)
    if measure == "tail":
        tail = confidences[-window:]
        return sum(tail) / len(tail)
    groups = group_confidences(confidences, window)
    if measure == "lowest":
        return min(groups)
    if measure == "bottom10":
        lowest = sorted(groups)[: max(1, int(len(groups) * bottom))]
        return sum(lowest) / len(lowest)
    raise ConfigError(f"unknown confidence measure {measure!r} ({', '.join(MEASURES)})")


def keep_most_confident(confidences: Sequence[float | None], keep: float) -> list[bool]:
    """Which traces a ``keep``-percent filter keeps: those at or above the ``100 − keep``
    percentile of the confidences (linear interpolation, as ``numpy.percentile`` and the reference
    code), so ties at the threshold are all kept; a trace without confidence is dropped.

    Example:
        >>> keep_most_confident([1.0, 3.0, 2.0, None, 4.0], 50)
        [False, True, False, False, True]
    """
    if not 0 < keep <= 100:
        raise ConfigError(f"the share of traces kept is a percentage in (0, 100], got {keep}")
    known = sorted(c for c in confidences if c is not None)
    if not known:
        return [False] * len(confidences)
    threshold = percentile(known, 100.0 - keep)
    return [c is not None and c >= threshold for c in confidences]


def percentile(ordered: Sequence[float], q: float) -> float:
    """``numpy.percentile(ordered, q)`` (linear interpolation) of a sorted, non-empty sequence.

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90)
        4.6
    """
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class GroupMonitor:
    """The online rule's running group: feed a trace's token confidences as they stream; ``low``
    turns True once a full group of ``window`` tokens has a mean below ``threshold`` (the
    reference's logits processor: no decision before ``window`` tokens).

    Example:
        >>> m = GroupMonitor(threshold=1.0, window=2)
        >>> [m.add(c) for c in (3.0, 0.5, 0.4)]
        [False, False, True]
    """

    def __init__(self, threshold: float, window: int) -> None:
        if window < 1:
            raise ConfigError("a confidence window is at least 1 token")
        self.threshold, self.window = threshold, window
        self._group: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self.tokens = 0
        self.lowest: float | None = None  # the lowest full group's mean so far
        self.low = False

    def add(self, confidence: float) -> bool:
        """Add one token's confidence; whether the trace has fallen below the threshold."""
        if len(self._group) == self.window:
            self._sum -= self._group[0]
        self._group.append(confidence)
        self._sum += confidence
        self.tokens += 1
        if len(self._group) == self.window:
            mean = self._sum / self.window
            self.lowest = mean if self.lowest is None else min(self.lowest, mean)
            self.low = self.low or mean < self.threshold
        return self.low
