"""SLI samples in the store: counts add up in place, window and slice sums, pruning."""

from __future__ import annotations

from opsmedic.store import Store
from store_fixtures import T0

M = int(T0 // 60)  # the fixed minute the samples are around


def test_a_minute_written_twice_adds_up(store: Store) -> None:
    table = store.slo_samples
    table.add({("api", M): [9, 10, 0], ("web", M): [1, 1, 0]})
    table.add({("api", M): [5, 5, 2]})
    assert table.minutes("api", M, M) == {M: (14, 15)}
    assert table.window("api", M, M, 1, 1.0).skewed == 2
    assert table.minutes("web", M - 10, M + 10) == {M: (1, 1)}


def test_window_sums_count_minutes_and_bad_slices(store: Store) -> None:
    table = store.slo_samples
    # Slices of 5 minutes aligned on the epoch: M0 starts one.
    m0 = M - M % 5
    table.add({
        ("api", m0 - 10): [10, 10, 0],  # before the window: its first sample ever all the same
        ("api", m0): [10, 10, 0],  # slice m0: good
        ("api", m0 + 1): [8, 10, 0],  # slice m0: 18/20 = 0.9, bad under 0.95
        ("api", m0 + 5): [20, 20, 0],  # slice m0+5: good
        ("api", m0 + 10): [0, 3, 1],  # slice m0+10 (the current one): bad
    })  # fmt: skip
    sums = table.window("api", m0, m0 + 12, 5, 0.95)
    assert (sums.good, sums.total, sums.skewed, sums.minutes_with_data) == (38, 43, 1, 4)
    assert (sums.slices_with_data, sums.bad_slices, sums.current_slice_has_data) == (3, 2, True)
    assert sums.first_minute == m0 - 10
    assert table.window("api", m0, m0 + 4, 5, 0.95).current_slice_has_data  # m0's slice
    assert not table.window("api", m0, m0 + 16, 5, 0.9).current_slice_has_data  # nothing yet
    assert table.window("api", m0, m0 + 7, 5, 0.9).bad_slices == 0  # 0.9 is not below 0.9


def test_an_slo_without_samples_sums_to_nothing(store: Store) -> None:
    sums = store.slo_samples.window("none", M - 100, M, 1, 1.0)
    assert (sums.total, sums.minutes_with_data, sums.slices_with_data) == (0, 0, 0)
    assert sums.first_minute is None


def test_samples_ahead_of_now_are_counted(store: Store) -> None:
    store.slo_samples.add({("api", M + 30): [1, 4, 0], ("api", M): [1, 1, 0]})
    assert store.slo_samples.ahead("api", M) == 4


def test_prune_deletes_the_old_minutes_with_the_rest(store: Store) -> None:
    store.slo_samples.add({("api", M - 100): [1, 1, 0], ("api", M): [2, 2, 0]})
    result = store.prune(older_than=(M - 50) * 60.0)
    assert result.slo_minutes == 1
    assert store.slo_samples.minutes("api", M - 1000, M) == {M: (2, 2)}
