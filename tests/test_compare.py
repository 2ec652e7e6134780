"""Reading curves: the shape of a mean curve, and a small model against a large one at equal FLOPs."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.lab.compare import curve_shape, equal_flops


def test_curve_shape_tells_rising_falling_inverse_u_and_noise_apart() -> None:
    ks = [1, 3, 5, 7]
    up = np.tile([0.2, 0.5, 0.7, 0.8], (30, 1))
    assert curve_shape(up, ks).shape == "rising" and curve_shape(up, ks).peak == 7
    assert curve_shape(up[:, ::-1], ks).shape == "falling"
    bump = np.tile([0.4, 0.6, 0.5, 0.45], (30, 1))
    s = curve_shape(bump, ks)
    assert (s.peak, s.shape) == (3, "inverse-U (rise and fall both significant)")
    assert s.rise == pytest.approx(0.2) and s.fall == pytest.approx(0.15)
    # per-question noise with the same mean at every K: no rise, no fall
    rng = np.random.default_rng(0)
    noisy = np.stack([rng.permutation([0.0, 1.0] * 15) for _ in ks], axis=1)
    flat = curve_shape(noisy, ks)
    assert flat.shape == "flat (no significant rise or fall)"
    assert flat.fall == 0.0 and flat.fall_low < 0 < flat.fall_high


def rows(model: str, flops_per_call: float, accuracy: dict[int, list[float]]) -> list[dict]:
    return [
        {"qid": f"q{i}", "strategy": "vote", "budget": k, "accuracy": a, "flops": flops_per_call * k}
        for k, values in accuracy.items()
        for i, a in enumerate(values)
    ]


def test_equal_flops_pairs_each_large_budget_with_the_largest_small_budget_that_fits() -> None:
    small = rows("s", 1.0, {1: [0, 0, 1, 0], 2: [0, 1, 1, 0], 3: [1, 1, 1, 0], 4: [1, 1, 1, 1]})
    large = rows("l", 3.0, {1: [1, 1, 0, 0], 2: [1, 1, 1, 0]})
    out = equal_flops(small, large, resamples=200)
    assert [(r["large_budget"], r["small_budget"]) for r in out] == [(1, 3), (2, 4)]  # 3 <= 3 FLOPs, 4 <= 6
    first = out[0]
    assert first["small_accuracy"] == 0.75 and first["large_accuracy"] == 0.5 and first["difference"] == 0.25
    assert first["difference_low"] <= 0.25 <= first["difference_high"] and first["questions"] == 4
    assert equal_flops(rows("s", 10.0, {1: [1.0]}), rows("l", 3.0, {1: [0.0]})) == []  # nothing fits
    with pytest.raises(ValueError, match="no FLOPs"):
        equal_flops([{"qid": "q", "strategy": "vote", "budget": 1, "accuracy": 1.0}], large)
