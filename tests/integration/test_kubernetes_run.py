"""`redis-gateway run` with the Kubernetes API source (config section ``kubernetes``),
against the local fake API server of tests/kube_api.py (no cluster exists here; the
fake speaks the real list/watch JSON, chunked streams, ERROR 410 and Status errors).

The real supervisor boots from the mirrored ConfigMap and Secret, every MODIFIED event
becomes a reload through the usual watcher pipeline, an invalid ConfigMap is drift
``rejected`` while the old config serves, a 410 re-list keeps working, and no Secret
value reaches the logs, the status, the history or the state directory."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_worker.control_socket import request
from tests.helpers import free_port, wait_until
from tests.integration.conftest import REDIS_GATEWAY, Gateway
from tests.kube_api import FakeKubeApi
from tests.kube_support import CM, NS, SEC, TOKEN

pytestmark = pytest.mark.integration

Factory = Callable[..., Gateway]
CANARY_1 = "canary-kube-jwt-3f9a1c7e5b2d4068-first"
CANARY_2 = "canary-kube-jwt-8d2e6b0a4c1f9375-second"


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$RUNTIME_DIRECTORY of the supervisors started by the test (where mirrors go; the
    teardown's SIGKILL leaves them behind, in tmp_path rather than the temp dir)."""
    path = tmp_path / "run"
    path.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(path))
    return path


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token=TOKEN) as server:
        server.put_configmap(NS, CM, {"server.workers": "1"})
        server.put_secret(NS, SEC, {"auth.jwt_secret": CANARY_1.encode()})
        yield server


def kube_config(api_url: str, tmp_path: Path, **over: Any) -> dict[str, Any]:
    """Main-file sections for a supervisor reading ``api_url``, its watcher quick."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return {
        "supervisor": {"watch_config": True, "watch_debounce_ms": 100, "watch_settle_ms": 50},
        "kubernetes": {
            "enabled": True,
            "namespace": NS,
            "configmap": CM,
            "secret": SEC,
            "api_url": api_url,
            "token_path": str(token),
            "ca_path": "",
            "timeout_seconds": 2.0,
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.4,
            "sync_timeout_seconds": 10.0,
            **over,
        },
    }


def history(gw: Gateway) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*REDIS_GATEWAY, "config", "history", "--format", "json", "-c", str(gw.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    entries = json.loads(result.stdout)
    assert isinstance(entries, list)
    return entries


def committed(gw: Gateway, version: int, workers: int) -> bool:
    st = gw.status()
    ready = [w for w in st["workers"] if w["state"] == "ready"]
    return bool(st["version"] == version and len(ready) == workers == len(st["workers"]))


def last_entry(gw: Gateway, version: int) -> dict[str, Any]:
    return next(e for e in reversed(history(gw)) if e.get("version") == version)


def test_run_boots_from_the_api_and_reloads_on_configmap_events(
    api: FakeKubeApi, gateway_factory: Factory, tmp_path: Path
) -> None:
    gw = gateway_factory(kube_config(api.url, tmp_path))
    # server.workers = 2 in the main file; the mirrored ConfigMap (above it) says 1.
    assert committed(gw, version=1, workers=1)

    api.put_configmap(NS, CM, {"server.workers": "2"})
    wait_until(lambda: committed(gw, version=2, workers=2), timeout=30, what="ConfigMap reload")
    entry = last_entry(gw, 2)
    assert (entry["result"], entry["trigger_kind"]) == ("committed", "ConfigMap")
    assert entry["changed"] == ["server.workers"]

    api.put_configmap(NS, CM, {"server.workers": "zero"})
    wait_until(
        lambda: gw.status()["drift"]["state"] == "rejected", timeout=30, what="drift rejected"
    )
    assert any("server.workers" in reason for reason in gw.status()["drift"]["reasons"])
    # The old config keeps serving.
    assert committed(gw, version=2, workers=2)
    assert gw.get("/healthz")[0] == 200
    assert last_entry(gw, 2)["result"] == "invalid"


def test_relist_after_410_and_secret_rotation_keep_secrets_out(
    api: FakeKubeApi, gateway_factory: Factory, tmp_path: Path, runtime_dir: Path
) -> None:
    gw = gateway_factory(kube_config(api.url, tmp_path))
    assert committed(gw, version=1, workers=1)
    lists = len(api.requests("list", "configmaps"))

    api.compact()  # every version handed out is too old now: the next watch gets 410
    api.expire_streams()
    wait_until(lambda: len(api.requests("list", "configmaps")) > lists, what="a re-list after 410")
    wait_until(lambda: api.open_streams("configmaps") == 1, what="watching again")
    api.put_configmap(NS, CM, {"server.workers": "2"})
    wait_until(lambda: committed(gw, version=2, workers=2), timeout=30, what="reload after 410")

    api.put_secret(NS, SEC, {"auth.jwt_secret": CANARY_2.encode()})
    wait_until(lambda: committed(gw, version=3, workers=2), timeout=30, what="Secret reload")
    entry = last_entry(gw, 3)
    assert (entry["result"], entry["trigger_kind"]) == ("committed", "Secret")
    assert entry["changed"] == ["auth.jwt_secret"]

    status = json.dumps(request(gw.control_socket, {"cmd": "status"}, 5.0))
    diff = json.dumps(request(gw.control_socket, {"cmd": "diff"}, 5.0))
    state = "".join(
        p.read_text(errors="replace")
        for p in Path(gw.config["supervisor"]["state_dir"]).rglob("*")
        if p.is_file()
    )
    started = next(
        json.loads(line) for line in gw.logs().splitlines() if '"kubernetes.started"' in line
    )
    mirror = Path(started["directory"])
    assert (mirror / "secrets" / "auth.jwt_secret").read_text() == CANARY_2
    assert mirror.parent == runtime_dir  # never the state directory

    gw.signal(signal.SIGTERM)
    assert gw.wait_exit() == 0
    assert not mirror.exists()  # the Secret's values do not outlive the supervisor
    everything = gw.logs() + gw.stderr() + status + diff + state + json.dumps(history(gw))
    for canary in (CANARY_1, CANARY_2):
        assert canary not in everything


@pytest.mark.parametrize("reachable", [True, False], ids=["401", "refused"])
def test_run_exits_1_when_the_api_cannot_be_listed(
    api: FakeKubeApi, gateway_factory: Factory, tmp_path: Path, runtime_dir: Path, reachable: bool
) -> None:
    url = api.url if reachable else f"http://127.0.0.1:{free_port()}"
    over = kube_config(url, tmp_path, sync_timeout_seconds=1.0)
    (tmp_path / "token").write_text("a-wrong-token\n")
    gw = gateway_factory(over, wait=False)
    assert gw.wait_exit() == 1
    message = gw.stderr()
    assert f"cannot start: kubernetes: the API at {url} did not list ConfigMap {CM}" in message
    assert "kubernetes.sync_timeout_seconds" in message
    assert re.search(r"401|Unauthorized" if reachable else r"refused", message), message
    assert not list(runtime_dir.iterdir())  # the mirror directory was removed
