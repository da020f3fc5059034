"""Key-prefix confinement through a real `redis-gateway run` and a real Redis.

The credential is confined to ``app:`` with policy ``all`` (the widest): whatever the
form of the request, keys outside the prefix, or in another database, never come back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import Gateway

pytestmark = pytest.mark.integration

APP_KEY = "app-key-0123456789abcdef"
HEADERS = {"authorization": f"Bearer {APP_KEY}"}


@pytest.fixture
def confined(
    gateway_factory: Callable[..., Gateway], clean_redis: redis.Redis
) -> Iterator[httpx.Client]:
    gw = gateway_factory(
        {
            "server": {"workers": 1},
            "auth": {
                "enabled": True,
                "api_keys": [
                    {"name": "app", "key": APP_KEY, "policy": "all", "key_prefix": "app:"}
                ],
            },
        }
    )
    for i in range(40):
        clean_redis.set(f"app:{i}", i)
        clean_redis.set(f"other:{i}", i)
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", headers=HEADERS, timeout=10) as c:
        yield c


def upstash(http: httpx.Client, *command: str) -> tuple[int, Any]:
    r = http.post("/", json=list(command))
    return r.status_code, r.json()


def test_scan_with_a_second_match_cannot_list_keys_outside_the_prefix(
    confined: httpx.Client,
) -> None:
    status, body = upstash(confined, "SCAN", "0", "MATCH", "app:*", "MATCH", "*", "COUNT", "1000")
    assert status == 403, body
    assert "pattern argument 5" in body["error"]
    for hostile in (
        ("SCAN", "0", "COUNT", "1000"),  # no MATCH: every key
        ("SCAN", "0", "COUNT", "MATCH", "MATCH", "*"),
        ("SCAN", "0", "MATCH", "app:*", "match", "*", "TYPE", "string"),
    ):
        status, body = upstash(confined, *hostile)
        assert status == 403, (hostile, body)
    # The honest form walks the prefix, and only the prefix, to the end.
    seen: set[str] = set()
    cursor = "0"
    while True:
        status, body = upstash(confined, "SCAN", cursor, "MATCH", "app:*", "COUNT", "7")
        assert status == 200, body
        cursor, keys = body["result"]
        seen.update(keys)
        if cursor == "0":
            break
    assert seen == {f"app:{i}" for i in range(40)}


def test_other_families_stay_inside_the_prefix_and_the_database(
    confined: httpx.Client, clean_redis: redis.Redis, redis_url: str
) -> None:
    clean_redis.rpush("app:list", "1", "2")
    clean_redis.set("app:v_1", "mine")
    clean_redis.set("w_1", "not mine")
    status, body = upstash(confined, "SORT", "app:list", "BY", "nosort", "GET", "app:v_*")
    assert (status, body) == (200, {"result": ["mine", None]})
    status, body = upstash(confined, "SORT", "app:list", "BY", "nosort", "GET", "#", "GET", "w_*")
    assert status == 403 and "pattern argument 7" in body["error"]
    status, body = upstash(confined, "SORT", "app:list", "STORE", "app:d", "STORE", "other:d")
    assert status == 403 and clean_redis.exists("other:d", "app:d") == 0
    status, body = upstash(confined, "COPY", "app:1", "app:copy", "DB", "0", "DB", "1")
    assert status == 403 and "database argument 6" in body["error"]
    with redis.Redis.from_url(redis_url, db=1) as db1:
        assert db1.exists("app:copy") == 0
    status, body = upstash(confined, "EVAL", "return redis.call('GET', 'other:1')", "0")
    assert status == 403 and "scripts can reach keys they do not declare" in body["error"]
    # Webdis /<db>/: the gateway's database only.
    r = confined.get("/webdis/1/GET/app:1")
    assert r.status_code == 403 and "database 1" in r.json()["error"]
    assert confined.get("/webdis/0/GET/app:1").json() == {"GET": "1"}
    assert confined.get("/webdis/GET/app:1").json() == {"GET": "1"}
    r = confined.get("/webdis//GET/app:1")
    assert r.status_code == 400 and "malformed path" in r.json()["error"]
