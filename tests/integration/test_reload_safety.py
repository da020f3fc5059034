"""Issue 14 on a real supervisor: a truncated or half-written config file is never
applied, and the watcher holds the changes it may not apply by itself."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import tomli_w

from tests.helpers import free_port, wait_until
from tests.integration.conftest import REDIS_GATEWAY, Gateway, deep_merge, http_get
from tests.integration.test_supervisor_zero_downtime import Load

pytestmark = pytest.mark.integration

Factory = Callable[..., Gateway]
DEBOUNCE_MS = 300
WATCHING = {
    "supervisor": {
        "watch_config": True,
        "watch_debounce_ms": DEBOUNCE_MS,
        "watch_settle_ms": 150,
        "recheck_interval_seconds": 0,
    }
}


def _refused(port: int) -> bool:
    try:
        http_get(port, "/healthz", timeout=1.0)
    except ConnectionRefusedError:
        return True
    return False


def test_truncating_the_file_leaves_the_service_where_it_was(gateway_factory: Factory) -> None:
    gw = gateway_factory(WATCHING)
    pids = gw.worker_pids()
    gw.config_path.write_text("")  # `: > gateway.toml`
    status = wait_until(
        lambda: (s := gw.status())["reloads"].get("invalid") and s,
        timeout=20,
        what="the empty file rejected",
    )
    assert "config file is empty" in "\n".join(status["last_reload"]["errors"])
    assert status["drift"]["state"] == "rejected"
    assert status["version"] == 1 and status["listen"] == [f"127.0.0.1:{gw.port}"]
    assert gw.worker_pids() == pids
    assert gw.get("/set/k/v") == (200, {"result": "OK"})
    text = gw.logs()
    assert "config file is empty" in text and "reload.committed" not in text

    gw.write_config()  # the rest of the write lands: same config as before
    status = wait_until(
        lambda: (s := gw.status())["drift"]["state"] == "in_sync" and s,
        timeout=20,
        what="in sync again",
    )
    assert status["last_reload"]["result"] == "unchanged" and status["version"] == 1


def test_a_port_change_seen_by_the_watcher_is_held_until_an_explicit_reload(
    gateway_factory: Factory,
) -> None:
    gw = gateway_factory(WATCHING)
    new_port = free_port()
    gw.write_config({"server": {"port": new_port}})
    status = wait_until(
        lambda: (s := gw.status())["reloads"].get("held") and s,
        timeout=20,
        what="the port change held",
    )
    assert status["drift"]["state"] == "pending"
    assert status["drift"]["reasons"] == [
        f"server.port: listen address moves ({gw.port} -> {new_port})"
    ]
    assert status["version"] == 1
    assert gw.get("/healthz")[0] == 200
    assert _refused(new_port)
    shown = gw.status_text()
    assert "config drift: pending" in shown and "redis-gateway reload" in shown
    assert "reload.held" in gw.logs()

    result = gw.reload()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reload committed: version 2")
    wait_until(
        lambda: http_get(new_port, "/healthz")[0] == 200, timeout=20, what="serving on the new port"
    )
    assert gw.status()["drift"]["state"] == "in_sync"
    wait_until(lambda: _refused(gw.port), timeout=20, what="old port closed")


def _write_in_pieces(path: Path, text: str, rng: random.Random, max_pause: float) -> None:
    """A non-atomic writer: truncate, write the first half in small chunks with pauses,
    pause, then the rest (what `cp` or an editor does, only slower)."""
    data = text.encode()
    half = len(data) // 2
    with open(path, "wb", buffering=0) as f:  # opening truncates
        time.sleep(rng.uniform(0, max_pause))
        for start in range(0, len(data), 48):
            f.write(data[start : start + 48])
            if start <= half < start + 48:
                time.sleep(rng.uniform(0, max_pause))
            else:
                time.sleep(rng.uniform(0, max_pause / 4))


def test_chunked_non_atomic_rewrites_under_load_never_apply_a_partial_config(
    gateway_factory: Factory,
    clean_redis: redis.Redis,
) -> None:
    gw = gateway_factory(deep_merge(WATCHING, {"server": {"workers": 1}}))
    variants = [
        deep_merge(gw.config, {"server": {"request_timeout_seconds": float(t)}}) for t in (11, 12)
    ]
    rng = random.Random(14)
    # Pauses stay below the debounce: a writer that pauses longer than
    # watch_debounce_ms + watch_settle_ms looks finished (docs/operations.md).
    max_pause = DEBOUNCE_MS / 1000 * 0.8
    hashes = set()
    with Load(gw.port) as load:
        for i in range(20):
            _write_in_pieces(gw.config_path, tomli_w.dumps(variants[i % 2]), rng, max_pause)

            def applied(version: int = i + 2) -> dict[str, Any] | None:
                status = gw.status()
                return status if status["version"] >= version else None

            status = wait_until(applied, timeout=30, what=f"rewrite {i} applied")
            hashes.add(status["hash"])
            assert status["last_reload"]["trigger"].startswith("watch")
    status = gw.status()
    counter = int(clean_redis.get("counter") or 0)
    print(
        f"\nchunked rewrites: ok={load.total_ok} failed_new={len(load.failed_new)} "
        f"failed_keepalive={len(load.failed_keepalive)} reloads={status['reloads']}"
    )
    assert load.failed_new == [] and load.failed_keepalive == []
    assert load.total_ok > 100
    assert counter == load.total_ok
    # Every rewrite was applied exactly once, never a partial config: only the two
    # complete variants were ever committed, and nothing failed or was deferred.
    assert status["reloads"] == {"committed": 20}
    assert status["version"] == 21
    assert len(hashes) == 2
    assert "reload.failed" not in gw.logs()


def test_an_empty_config_file_at_start_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "gateway.toml"
    empty.write_text("")
    result = subprocess.run(
        [*REDIS_GATEWAY, "run", "-c", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{empty}: config file is empty" in result.stderr
