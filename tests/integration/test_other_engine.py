"""The whole app behind the HTTP engine that is not the default (``server.http_engine``:
the default is ``native``, so this is ``uvicorn``'s httptools protocol).

The protocol suites (tests/integration/test_upstash_http.py and test_webdis_http.py)
run on the default engine; they are collected here a second time, with their gateway
fixtures redefined to serve the real app through the other engine: exact bodies, status
codes, headers, body limits (413), timeouts (504), auth, rate limits, CORS and the
streamed SUBSCRIBE must come out the same on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from gateway_worker.config import Config
from gateway_worker.config.server import ServerConfig
from tests.integration import test_upstash_http as upstash_suite
from tests.integration import test_webdis_http as webdis_suite
from tests.integration.conftest_gateway import running_gateway

pytestmark = pytest.mark.integration

OTHER_ENGINE = "uvicorn" if ServerConfig().http_engine == "native" else "native"


@contextmanager
def running_other_gateway(config: Config) -> Iterator[str]:
    """As conftest_gateway.running_gateway, on the other engine."""
    server = config.server.model_copy(update={"http_engine": OTHER_ENGINE})
    with running_gateway(config.model_copy(update={"server": server})) as base:
        yield base


# -- the Upstash suite ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[str]:
    with running_other_gateway(upstash_suite.gateway_config(redis_url)) as base:
        yield base


@pytest.fixture
def http(gateway: str, clean_redis: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=10) as client:
        yield client


# -- the Webdis suite ----------------------------------------------------------------


@pytest.fixture(scope="module")
def webdis_root(redis_url: str) -> Iterator[str]:
    with running_other_gateway(webdis_suite.webdis_root_config(redis_url)) as base:
        yield base


@pytest.fixture(scope="module")
def secured(redis_url: str) -> Iterator[str]:
    with running_other_gateway(webdis_suite.secured_config(redis_url)) as base:
        yield base


def _collect(module: Any) -> dict[str, Any]:
    """The suite's test functions, re-bound here so they use the fixtures above."""
    return {
        name: getattr(module, name)
        for name in dir(module)
        if name.startswith("test_") and callable(getattr(module, name))
    }


globals().update({f"{name}_other_upstash": fn for name, fn in _collect(upstash_suite).items()})
globals().update({f"{name}_other_webdis": fn for name, fn in _collect(webdis_suite).items()})


def test_the_suites_were_collected() -> None:
    names = [n for n in globals() if n.endswith(("_other_upstash", "_other_webdis"))]
    assert len(names) >= 20
