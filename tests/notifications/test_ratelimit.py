"""The Redis sliding-window limiter: grants up to the limit, then answers how long to wait."""

from __future__ import annotations

import threading

import pytest

from notifications.ratelimit import RateLimiter


def test_grants_up_to_the_limit_then_answers_the_wait(redis_db, fake_time):
    limiter = RateLimiter(redis_db, [(3, 60.0)], clock=fake_time)
    waits = []
    for _ in range(4):
        waits.append(limiter.acquire("m"))
        fake_time.advance(10)
    assert waits == [0.0, 0.0, 0.0, 30.0]  # 4th at t=30: the send at t=0 leaves the window at t=60
    fake_time.advance(20)  # t=60
    assert limiter.acquire("m") == 0.0


def test_a_refused_attempt_takes_no_slot(redis_db, fake_time):
    limiter = RateLimiter(redis_db, [(1, 60.0)], clock=fake_time)
    assert limiter.acquire("m") == 0.0
    for _ in range(5):
        assert limiter.acquire("m") == 60.0
    fake_time.advance(60)
    assert limiter.acquire("m") == 0.0


def test_the_longest_wait_of_several_windows_applies(redis_db, fake_time):
    limiter = RateLimiter(redis_db, [(2, 60.0), (3, 3600.0)], clock=fake_time)
    for _ in range(2):
        assert limiter.acquire("m") == 0.0
    assert limiter.acquire("m") == 60.0
    fake_time.advance(60)
    assert limiter.acquire("m") == 0.0  # third of the hour
    fake_time.advance(60)
    assert limiter.acquire("m") == pytest.approx(3600.0 - 120.0)


def test_keys_are_independent(redis_db, fake_time):
    limiter = RateLimiter(redis_db, [(1, 60.0)], clock=fake_time)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") > 0


def test_concurrent_callers_never_exceed_the_limit(redis_db, fake_time):
    limiter = RateLimiter(redis_db, [(30, 60.0)], clock=fake_time)
    results: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            wait = limiter.acquire("m")
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(0.0) == 30 and len(results) == 100


def test_limits_must_be_positive(redis_db):
    with pytest.raises(ValueError):
        RateLimiter(redis_db, [(0, 60.0)])
