"""fedsnn.analysis.stats against values worked out by hand or by scipy's documented results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsnn.analysis import stats


def test_wilson_interval_of_known_rates() -> None:
    # Wilson 95% for 0/10: [0, z^2 / (n + z^2)] = [0, 0.2775]; for 10/10 the mirror image
    none = stats.wilson(0, 10)
    assert none.value == 0 and none.low == pytest.approx(0.0, abs=1e-12) and none.high == pytest.approx(0.2775, abs=1e-4)
    full = stats.wilson(10, 10)
    assert full.low == pytest.approx(1 - 0.2775, abs=1e-4) and full.high == pytest.approx(1.0)
    assert math.isnan(stats.wilson(0, 0).value)
    assert stats.rate([True, None, False, True]).n == 3  # None is "not judged", not a failure


def test_bootstrap_is_seeded_and_brackets_the_median() -> None:
    values = np.random.default_rng(1).normal(5.0, 1.0, size=80)
    a, b = stats.median(values), stats.median(values)
    assert a == b  # the same report on every rebuild
    assert a.low < a.value < a.high and a.value == pytest.approx(np.median(values))
    assert 4.5 < a.low and a.high < 5.5
    assert stats.median([3.0, 3.0, 3.0]).format(".1f") == "3.0 [3.0, 3.0]"  # nothing to resample
    assert stats.median([math.nan, 2.0]).n == 1


def test_paired_comparison_finds_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=60)
    shifted = stats.paired(a, a - 0.5 + rng.normal(0, 0.1, size=60))
    assert shifted.direction == "less" and shifted.p_value < 1e-6
    assert shifted.difference.low < -0.5 < shifted.difference.high
    same = stats.paired(a, a)
    assert same.direction == "not different" and same.p_value == 1.0
    noise = stats.paired(a, a + rng.normal(0, 1e-3, size=60))
    assert not noise.significant or abs(noise.difference.value) < 1e-3
    with pytest.raises(ValueError, match="length"):
        stats.paired([1.0], [1.0, 2.0])


def test_interval_prints_value_low_high() -> None:
    assert stats.Interval(0.5, 0.25, 0.75, 4).format(".0f", 100, "%") == "50% [25, 75]"
    assert stats.Interval(math.nan, math.nan, math.nan, 0).format() == "n/a"
