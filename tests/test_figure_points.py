"""A figure draws at most ``MOST_POINTS`` points per curve, whatever the run's size, and loses no peak."""

from __future__ import annotations

import numpy as np

from simulator.report.figures import MOST_POINTS, _binned_peaks, _thinned_cdf


def test_a_short_series_is_drawn_as_it_is() -> None:
    times = np.array([0.0, 10.0, 20.0])
    stacks = [np.array([1, 3, 0])]
    got_times, got_stacks = _binned_peaks(times, stacks)
    assert got_times.tolist() == [0.0, 10.0, 20.0]
    assert got_stacks[0].tolist() == [1, 3, 0]


def test_a_long_series_keeps_its_peak_in_two_thousand_bins() -> None:
    times = np.arange(100_000, dtype=np.float64)  # a change every second
    depth = np.ones(100_000, dtype=np.int64)
    depth[43_210] = 500  # one instant at 500
    other = np.zeros(100_000, dtype=np.int64)
    other[-1] = 7
    got_times, (got_depth, got_other) = _binned_peaks(times, [depth, other])
    assert len(got_times) == MOST_POINTS == len(got_depth) == len(got_other)
    assert got_times[0] == 0.0
    assert got_depth.max() == 500 and got_depth.min() == 1
    peak_bin = int(np.argmax(got_depth))
    assert got_times[peak_bin] <= 43_210 < got_times[peak_bin + 1]  # drawn in the bin that holds it
    assert got_other[-1] == 7 and got_other[:-1].max() == 0  # the last instant's value, in the last bin only


def test_a_cdf_of_a_hundred_thousand_delays_keeps_its_ends() -> None:
    delays = np.arange(1, 100_001, dtype=np.float64)
    at, shares = _thinned_cdf(delays, mine=200_000)  # half the group's mail was accepted
    assert len(at) == MOST_POINTS
    assert (at[0], shares[0]) == (1.0, 1 / 200_000)
    assert (at[-1], shares[-1]) == (100_000.0, 0.5)
    assert np.all(np.diff(at) > 0) and np.all(np.diff(shares) > 0)
    # Between two drawn points the true curve rises by less than 1/MOST_POINTS of the height.
    assert np.max(np.diff(shares)) < 1 / MOST_POINTS


def test_a_small_cdf_is_drawn_point_for_point() -> None:
    at, shares = _thinned_cdf(np.array([30.0, 60.0, 90.0]), mine=4)
    assert at.tolist() == [30.0, 60.0, 90.0]
    assert shares.tolist() == [0.25, 0.5, 0.75]
