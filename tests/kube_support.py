"""Helpers shared by the Kubernetes source tests (the fake server is tests/kube_api.py)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from supervisor.kubernetes import KubernetesSettings, KubernetesSource
from tests.helpers import wait_until
from tests.kube_api import FakeKubeApi

NS, CM, SEC = "redis-gateway", "redis-gateway-config", "redis-gateway-secrets"
JWT = b"jwt-Secret-Value-5f2b9c41"
PASSWORD = b"redis-Password-77aa01"
TOKEN = "token-0"
GATEWAY_TOML = '[server]\nport = 8080\n\n[redis]\nurl = "redis://redis:6379"\n'
INITIAL = {"gateway.toml": GATEWAY_TOML, "server.workers": "2"}
Logs = list[MutableMapping[str, Any]]


def settings(api: FakeKubeApi, token_file: Path, **overrides: Any) -> KubernetesSettings:
    """Settings for ``api``, with short timeouts and backoff."""
    values: dict[str, Any] = {
        "namespace": NS,
        "configmap": CM,
        "secret": SEC,
        "api_url": api.url,
        "token_path": token_file,
        "ca_path": None,
        "timeout_seconds": 2.0,
        "watch_timeout_seconds": 60,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.4,
    }
    values.update(overrides)
    return KubernetesSettings(**values)


def cm_dir(src: KubernetesSource) -> Path:
    assert src.configmap_dir is not None
    return src.configmap_dir


def sec_dir(src: KubernetesSource) -> Path:
    assert src.secrets_dir is not None
    return src.secrets_dir


def mirrored(directory: Path) -> dict[str, bytes]:
    """The keys as a reader sees them: the visible names, through their symlinks."""
    return {
        n: (directory / n).read_bytes()
        for n in sorted(os.listdir(directory))
        if not n.startswith("..")
    }


def snapshot(directory: Path) -> tuple[str, dict[str, tuple[int, bytes]]]:
    """``..data``'s target and every data file's mtime and content."""
    target = os.readlink(directory / "..data")
    files = {
        n: ((directory / target / n).stat().st_mtime_ns, (directory / target / n).read_bytes())
        for n in os.listdir(directory / target)
    }
    return target, files


def sync_point(api: FakeKubeApi, plural: str) -> str:
    """Return once the client has handled every event sent so far on its stream:
    a bookmark at the current version, an end of stream, and the client's next watch
    asking for exactly that version."""
    wait_until(lambda: api.open_streams(plural) >= 1, what=f"an open {plural} stream")
    before = len(api.requests("watch", plural))
    version = api.bookmark()
    api.end_streams()
    wait_until(
        lambda: any(
            s.params.get("resourceVersion") == version
            for s in api.requests("watch", plural)[before:]
        ),
        what=f"a {plural} watch from the bookmark {version}",
    )
    return version


def events(logs: Logs, name: str) -> Logs:
    return [e for e in list(logs) if e["event"] == name]


def reconnect_warnings(logs: Logs, kind: str) -> Logs:
    return [
        e
        for e in events(logs, "kubernetes.reconnect")
        if e["log_level"] == "warning" and e["kind"] == kind
    ]
