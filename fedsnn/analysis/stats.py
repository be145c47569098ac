"""Uncertainty for every reported figure (REFERENCE.md section 9), from scipy.stats.

- rates (success, ASR, label accuracy, A_T): Wilson score interval
  (``scipy.stats.binomtest(k, n).proportion_ci(method='wilson')``);
- medians and means: percentile bootstrap (``scipy.stats.bootstrap``,
  2,000 resamples, seeded, so a report is the same on every rebuild);
- ANN against SNN on the same samples: Wilcoxon signed-rank
  (``scipy.stats.wilcoxon``) on the per-sample differences, with a bootstrap
  interval of their median as the effect size.

Every interval prints as ``value [low, high]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
ALPHA = 0.05  # significance level of the paired test


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval; NaN bounds when n is too small."""

    value: float
    low: float
    high: float
    n: int

    def format(self, spec: str = ".2f", scale: float = 1.0, unit: str = "") -> str:
        """``value [low, high]`` with ``spec`` applied to each number (after ``scale``)."""
        if not math.isfinite(self.value):
            return "n/a"
        parts = [format(scale * v, spec) if math.isfinite(v) else "?" for v in (self.value, self.low, self.high)]
        return f"{parts[0]}{unit} [{parts[1]}, {parts[2]}]"

    def __str__(self) -> str:
        return self.format()

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Rate k/n with its Wilson score interval; n = 0 gives NaN."""
    if trials == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / trials, float(ci.low), float(ci.high), int(trials))


def rate(flags: Sequence[bool | None], confidence: float = CONFIDENCE) -> Interval:
    """Wilson interval of the share of True among the flags that are not None."""
    known = [bool(f) for f in flags if f is not None]
    return wilson(sum(known), len(known), confidence)


def bootstrap(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.median,
              resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> Interval:
    """``statistic`` of the finite values with a percentile-bootstrap interval.

    values: [n] floats (NaNs dropped). A single value or identical values give
    a zero-width interval (there is nothing to resample).
    """
    data = np.asarray([v for v in values if v is not None], dtype=float)
    data = data[np.isfinite(data)]
    if len(data) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    point = float(statistic(data))
    if len(data) == 1 or np.all(data == data[0]):
        return Interval(point, point, point, len(data))
    result = stats.bootstrap((data,), lambda x, axis: statistic(x, axis=axis), n_resamples=resamples,
                             confidence_level=confidence, method="percentile", vectorized=True,
                             rng=np.random.default_rng(seed))
    return Interval(point, float(result.confidence_interval.low), float(result.confidence_interval.high), len(data))


def median(values: Sequence[float], **kwargs) -> Interval:
    return bootstrap(values, np.median, **kwargs)


def mean(values: Sequence[float], **kwargs) -> Interval:
    return bootstrap(values, np.mean, **kwargs)


@dataclass(frozen=True)
class PairedComparison:
    """B against A on the same samples: the median (or mean) of (b - a) with its
    bootstrap interval (effect size) and the Wilcoxon signed-rank p-value."""

    difference: Interval
    p_value: float
    statistic: float

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_value) and self.p_value < ALPHA

    @property
    def direction(self) -> str:
        """'less' | 'more' | 'not different': b against a, at level ALPHA."""
        if not self.significant:
            return "not different"
        return "less" if self.difference.value < 0 else "more"

    def as_dict(self) -> dict[str, object]:
        return {"median_difference": self.difference.as_dict(), "p_value": self.p_value,
                "statistic": self.statistic, "direction": self.direction}


def paired(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], float] = np.median,
           **kwargs) -> PairedComparison:
    """Compare b with a sample by sample (a[i] and b[i] are the same sample).

    ``statistic`` summarises the differences: the median by default; the mean
    for rates that are mostly 0 or 1 (GAMIN's per-class rates), whose median
    difference is 0 even when most pairs differ. Pairs with a non-finite member
    are dropped. All-zero differences give p = 1.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    diff = y[keep] - x[keep]
    effect = bootstrap(diff, statistic, **kwargs)
    if len(diff) == 0:
        return PairedComparison(effect, math.nan, math.nan)
    if np.all(diff == 0):
        return PairedComparison(effect, 1.0, 0.0)
    test = stats.wilcoxon(diff)
    return PairedComparison(effect, float(test.pvalue), float(test.statistic))
