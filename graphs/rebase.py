"""REBASE (Wu et al.): reward-balanced expansion of a search tree.

:func:`allocate` is the expansion rule, exactly as in the authors' ``rebase.py``
(shared/specs/algorithms.md §4): candidates are taken in descending reward order, each gets
``W_j = ceil(B · w_j / S)`` children with ``w_j = exp(R_j / T_b)``, then ``B -= W_j`` and
``S -= w_j``. The allocations always sum to the budget ``B``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["allocate"]


def allocate(rewards: Sequence[float], budget: int, temperature: float = 0.2) -> list[int]:
    """How many children each candidate gets, in the order of ``rewards``.

    Args:
        rewards: the candidates' rewards (e.g. the PRM score of their last step).
        budget: children to hand out (the remaining width).
        temperature: the softmax temperature ``T_b`` (0.2 in the paper's configuration).

    Example:
        >>> allocate([0.9, 0.1, 0.5], budget=8, temperature=0.2)
        [7, 0, 1]
        >>> allocate([0.3, 0.3, 0.3], budget=5)  # equal rewards: as even as ceil allows
        [2, 2, 1]
    """
    if budget < 0 or isinstance(budget, bool) or not isinstance(budget, int):
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not rewards:
        if budget:
            raise ValueError(f"cannot allocate a budget of {budget} to no candidates")
        return []
    order = sorted(range(len(rewards)), key=lambda i: -rewards[i])  # stable: ties keep their order
    top = max(rewards)
    # exp((R - max)/T): the same ratios w_j / S, without overflow
    weights = [math.exp((rewards[i] - top) / temperature) for i in order]
    remaining_weight = math.fsum(weights)
    out = [0] * len(rewards)
    left = budget
    for position, (i, w) in enumerate(zip(order, weights, strict=True)):
        if position == len(order) - 1:
            share = left  # the last one's ceil(B * w / S) is B itself; say so exactly
        else:
            share = min(left, math.ceil(left * w / remaining_weight)) if remaining_weight > 0 else 0
        out[i] = share
        left -= share
        remaining_weight -= w
    return out
