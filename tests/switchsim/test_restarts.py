"""The restart policy of `serve --workers` (switchsim/restarts.py), without processes: a death is
restarted at once, a crash loop waits 0.5 s, then twice as long each time up to 30 s, and a
worker that ran for 10 s starts the count again."""

from __future__ import annotations

import pytest

from switchsim.restarts import RestartPolicy, exit_fields


def test_a_crash_loop_waits_twice_as_long_each_time_up_to_30_s() -> None:
    policy = RestartPolicy()
    restarts = [policy.died(ran=1.0) for _ in range(9)]
    assert [r.delay for r in restarts] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [r.quick_deaths for r in restarts] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [r.crash_loop for r in restarts] == [False] + [True] * 8


def test_a_worker_that_ran_10_s_starts_the_count_again() -> None:
    policy = RestartPolicy()
    assert [policy.died(ran).delay for ran in (1.0, 2.0, 3.0, 10.0, 9.9, 0.1)] == [0.0, 0.5, 1.0, 0.0, 0.0, 0.5]


def test_a_death_long_after_the_start_is_restarted_at_once() -> None:
    policy = RestartPolicy()
    restart = policy.died(ran=3600.0)
    assert (restart.delay, restart.quick_deaths, restart.crash_loop) == (0.0, 0, False)


@pytest.mark.parametrize(
    ("returncode", "expected"),
    [(-9, {"signal": "SIGKILL"}), (-15, {"signal": "SIGTERM"}), (-200, {"signal": "200"}), (0, {"exit_code": 0}),
     (2, {"exit_code": 2})],
)
def test_exit_fields_name_the_signal_or_the_exit_code(returncode: int, expected: dict[str, object]) -> None:
    assert exit_fields(returncode) == expected
