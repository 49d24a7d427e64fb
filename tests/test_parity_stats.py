"""The statistics of ``benchmarks/parity.py``: the Welch interval of a difference of means and the
per-cell verdict (no d3rlpy needed: the script is imported by path)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

PARITY = Path(__file__).resolve().parents[1] / "benchmarks" / "parity.py"


@pytest.fixture(scope="module")
def parity():
    spec = importlib.util.spec_from_file_location("parity_under_test", PARITY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize(("a", "b"), [
    ([61.2, 55.0, 70.3, 58.8, 64.1], [52.0, 49.5, 60.1, 47.7, 55.3]),  # equal sizes, different spreads
    ([10.0, 12.0, 11.5], [30.0, 10.0, 55.0, 20.0, 41.0, 12.0]),  # unequal sizes and variances
    ([-3.0, 1.0], [0.5, 0.25, 0.75]),
])
def test_welch_interval_matches_scipy(parity, a, b) -> None:
    diff, low, high = parity.welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    ci90 = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    assert parity.welch_interval(a, b, 0.90)[1:] == pytest.approx((ci90.low, ci90.high), rel=1e-10)


def test_welch_interval_edge_cases(parity) -> None:
    assert parity.welch_interval([5.0, 5.0], [3.0, 3.0]) == (2.0, 2.0, 2.0)  # no spread: the point
    diff, low, high = parity.welch_interval([5.0], [3.0, 4.0])  # one value: no interval
    assert diff == 1.5 and math.isnan(low) and math.isnan(high)


def test_compare_reports_means_sample_stds_and_verdict(parity) -> None:
    a, b = [61.2, 55.0, 70.3, 58.8, 64.1], [52.0, 49.5, 60.1, 47.7, 55.3]
    c = parity.compare(a, b)
    assert c["n_a"] == 5 and c["n_b"] == 5
    assert c["mean_a"] == pytest.approx(np.mean(a)) and c["mean_b"] == pytest.approx(np.mean(b))
    assert c["std_a"] == pytest.approx(np.std(a, ddof=1)) and c["std_b"] == pytest.approx(np.std(b, ddof=1))
    # the interval excludes 0 and the difference (8.96) exceeds the larger sample std (5.85)
    assert c["low"] > 0 and abs(c["diff"]) > max(c["std_a"], c["std_b"])
    assert c["verdict"] == "outside"
    with pytest.raises(ValueError):
        parity.compare([], [1.0])


def test_verdict_rules(parity) -> None:
    v = parity.verdict
    assert v(1.0, -2.0, 4.0, 0.1, 0.1) == "within"  # the interval contains 0
    assert v(3.0, 1.0, 5.0, 2.0, 3.5) == "within"  # interval excludes 0, |diff| <= the larger std
    assert v(-3.0, -5.0, -1.0, 2.0, 3.0) == "within"  # the same for a negative difference (|diff| == std)
    assert v(-3.0, -5.0, -1.0, 2.0, 2.9) == "outside"
    assert v(3.0, 1.0, 5.0, 2.0, 2.5) == "outside"
    assert v(0.0, 0.0, 0.0, 0.0, 0.0) == "within"  # identical constant samples
    assert v(2.0, 2.0, 2.0, 0.0, 0.0) == "outside"  # constant samples that differ
    nan = math.nan
    assert v(2.0, nan, nan, nan, 3.0) == "within"  # one seed on a side: only the spread test
    assert v(4.0, nan, nan, nan, 3.0) == "outside"
    assert v(4.0, nan, nan, nan, nan) == "n/a"  # one seed on both sides
