"""Fixtures of the notification tests: a Redis database of their own (db 14, emptied around each
test; with CI=true an unreachable Redis fails instead of skipping) and a settable clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from redis import Redis

from tests.conftest import REDIS_URL, redis_or_skip

NOTIFY_REDIS_URL = os.environ.get("GRIDLOOP_TEST_NOTIFY_REDIS_URL") or urlsplit(REDIS_URL)._replace(path="/14").geturl()


class FakeTime:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float = 1_772_413_200.0) -> None:  # 2026-03-02 01:00 UTC
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_db() -> Iterator[Redis]:
    yield from redis_or_skip(NOTIFY_REDIS_URL)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()

