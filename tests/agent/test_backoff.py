import pytest

from edgeseg.agent.backoff import Backoff, delay


@pytest.mark.parametrize("attempt, rnd, expected", [
    (0, 0.0, 0.5), (1, 0.0, 1.0), (2, 0.0, 2.0), (5, 0.0, 10.0), (50, 0.0, 10.0),
    (0, 0.999999, 0.25), (3, 0.5, 3.0), (500, 0.5, 7.5),
])
def test_capped_exponential_with_jitter(attempt, rnd, expected):
    assert delay(attempt, initial=0.5, cap=10.0, jitter=0.5, rnd=rnd) == pytest.approx(expected,
                                                                                     rel=1e-5)


def test_never_zero_so_never_a_busy_loop():
    b = Backoff(initial=0.1, cap=1.0, jitter=0.5)
    delays = [b.next_delay() for _ in range(40)]
    assert min(delays) >= 0.05 and max(delays) <= 1.0
    assert len(set(delays)) > 1  # jitter: retries of many agents do not line up
    b.reset()
    assert b.next_delay() <= 0.1


def test_negative_attempt_is_a_bug():
    with pytest.raises(ValueError):
        delay(-1, 1, 1, 0, 0)
