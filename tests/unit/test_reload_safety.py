"""Issue 14: a truncated or half-written config file is never applied.

- the loader refuses an empty main file (or overlay) and a read during a write;
- the watcher reports inputs only once they settle;
- a watcher-only reload checks it read what settled (else "deferred") and holds the
  changes of ``supervisor.reload.watch_policy`` ("held", drift pending) that an explicit reload
  applies.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_worker.config import Config
from supervisor.config import ConfigError, ConfigInputs, fingerprint_inputs, load_config
from supervisor.reload.watch_policy import HELD_CHANGES, held_reasons
from supervisor.triggers.watch import ConfigWatcher
from tests.helpers import free_port, wait_until
from tests.unit.test_arbiter import Env, loaded

EMPTY = "config file is empty"


def _problems(path: Path, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(ConfigInputs(config_path=path, env={}, **kw))
    return info.value.problems


@pytest.mark.parametrize("text", ["", "\n\n   \n"])
def test_an_empty_main_file_is_refused(tmp_path: Path, text: str) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text(text)
    [problem] = _problems(main)
    assert problem.startswith(f"{main}: {EMPTY};")
    assert f"from file {main}" in problem


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("gateway.toml", "# only a comment\n[server]\n[redis]\n"),
        ("gateway.yaml", "# nothing\n"),
        ("gateway.json", "{}"),
    ],
)
def test_a_main_file_without_a_setting_is_refused(tmp_path: Path, name: str, text: str) -> None:
    main = tmp_path / name
    main.write_text(text)
    [problem] = _problems(main)
    assert ("config file is" in problem and "without a single setting" in problem) or (
        EMPTY in problem
    )


def test_an_emptied_profile_overlay_is_refused(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text("[server]\nworkers = 1\n")
    overlay = tmp_path / "gateway.dev.toml"
    overlay.write_text("")
    [problem] = _problems(main)
    assert problem.startswith(f"{overlay}: {EMPTY};")
    assert "from profile file" in problem


def test_a_file_that_moves_while_it_is_read_is_refused_and_never_fingerprints_equal(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text("[server]\nworkers = 1\n")
    real = os.fstat
    calls = {"n": 0}

    def growing(fd: int) -> os.stat_result:
        # Every second fstat of the file sees it one byte longer: a writer is active.
        st = real(fd)
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            fields = list(st)
            fields[6] += 1  # st_size
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(os, "fstat", growing)
    [problem] = _problems(main)
    assert "changed while it was being read" in problem
    inputs = ConfigInputs(config_path=main, env={})
    assert fingerprint_inputs(inputs) != fingerprint_inputs(inputs)
    monkeypatch.setattr(os, "fstat", real)
    assert fingerprint_inputs(inputs) == fingerprint_inputs(inputs)


# -- the watcher only reports settled inputs ---------------------------------------------


def test_the_watcher_reports_a_file_only_once_it_stopped_changing(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("v = 0\n")
    seen: list[tuple[str, str]] = []
    # Nothing is watched through inotify: a periodic re-check every 20 ms finds the
    # writes, and must not report any of them while the writer is still going.
    watcher = ConfigWatcher(
        [],
        config.read_text,
        lambda r, fp: seen.append((r, fp)),
        debounce_seconds=0.0,
        recheck_interval_seconds=0.02,
        settle_seconds=0.15,
    )
    watcher.start()
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            config.write_text(f"v = {n}\n")
            time.sleep(0.03)

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert seen == [], seen  # never a report while the content moves
            time.sleep(0.01)
        stop.set()
        thread.join()
        final = config.read_text()
        wait_until(lambda: seen, timeout=10, what="the settled change")
        assert [fp for _, fp in seen] == [final]
    finally:
        stop.set()
        watcher.stop()


def test_forget_reports_the_same_content_again(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("v = 1\n")
    seen: list[str] = []
    watcher = ConfigWatcher(
        [config],
        config.read_text,
        lambda r, fp: seen.append(fp),
        debounce_seconds=0.05,
        recheck_interval_seconds=0,
        settle_seconds=0.05,
    )
    watcher.start()
    try:
        config.write_text("v = 2\n")
        wait_until(lambda: seen == ["v = 2\n"], timeout=10, what="first report")
        watcher.forget()  # the reload read other bytes: look again
        wait_until(lambda: seen == ["v = 2\n", "v = 2\n"], timeout=10, what="second report")
    finally:
        watcher.stop()


# -- the watch policy table --------------------------------------------------------------


def _config(**sections: Any) -> Config:
    return Config.model_validate(sections)


KEY = "0123456789abcdef"
HELD_CASES = [
    ("server.host", {"server": {"host": "127.0.0.1"}}, {"server": {"host": "0.0.0.0"}}),
    ("server.port", {"server": {"port": 8001}}, {"server": {"port": 8002}}),
    ("profile", {"profile": "dev"}, {"profile": "staging", "redis": {"url": "redis://r:1"}}),
    (
        "auth.enabled",
        {"auth": {"enabled": True, "jwt_secret": "s" * 32}},
        {"auth": {"enabled": False, "jwt_secret": "s" * 32}},
    ),
    (
        "auth.api_keys",
        {"auth": {"api_keys": [{"name": "a", "key": KEY, "policy": "safe"}]}},
        {"auth": {"api_keys": [{"name": "a", "key": KEY, "policy": "all"}]}},
    ),
    (
        "auth.api_keys",
        {"auth": {"api_keys": [{"name": "a", "key": KEY}]}},
        {"auth": {"api_keys": [{"name": "a", "key": KEY, "admin": True}]}},
    ),
    (
        "auth.api_keys",
        {"auth": {"api_keys": [{"name": "a", "key": KEY, "key_prefix": "app:"}]}},
        {"auth": {"api_keys": [{"name": "a", "key": KEY}]}},
    ),
    (
        "auth.rate_limiting.enabled",
        {"auth": {"rate_limiting": {"enabled": True}}},
        {"auth": {"rate_limiting": {"enabled": False}}},
    ),
    ("policy.denied_commands", {}, {"policy": {"denied_commands": ["FLUSHALL"]}}),
    ("policy.allowed_commands", {}, {"policy": {"allowed_commands": ["EVAL"]}}),
    (
        "features.raw_commands",
        {"features": {"raw_commands": False}},
        {"features": {"raw_commands": True}},
    ),
    (
        "features.admin_endpoints",
        {"auth": {"jwt_secret": "s" * 32}},
        {"auth": {"jwt_secret": "s" * 32}, "features": {"admin_endpoints": True}},
    ),
    ("features.debug_mode", {}, {"features": {"debug_mode": True}}),
    (
        "server.cors.allowed_origins",
        {"server": {"cors": {"enabled": True, "allowed_origins": ["https://a.example"]}}},
        {"server": {"cors": {"enabled": True, "allowed_origins": ["*"]}}},
    ),
    ("redis.url", {"redis": {"url": "redis://r:1"}}, {}),
]


@pytest.mark.parametrize(("key", "old", "new"), HELD_CASES)
def test_each_row_holds_its_unsafe_change(
    key: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    reasons = held_reasons(_config(**old), _config(**new))
    assert [r.split(":")[0] for r in reasons] == [key], reasons
    assert held_reasons(_config(**new), _config(**old)) == [] or key in (
        "server.host",
        "server.port",
        "profile",
    )  # moving back is a move too


def test_leaving_a_cluster_for_no_redis_at_all_is_held() -> None:
    reasons = held_reasons(_config(redis={"mode": "cluster", "nodes": ["n:1"]}), _config(redis={}))
    assert [r.split(":")[0] for r in reasons] == ["redis.url"], reasons


def test_every_row_of_the_table_is_exercised() -> None:
    assert {row.key for row in HELD_CHANGES} == {key for key, _, _ in HELD_CASES}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({}, {"server": {"request_timeout_seconds": 9}}),
        ({}, {"server": {"workers": 7}}),
        ({"redis": {"url": "redis://r:1"}}, {"redis": {"url": "redis://other:2"}}),
        # Moving to a cluster drops redis.url: not a move to the embedded Redis.
        ({"redis": {"url": "redis://r:1"}}, {"redis": {"mode": "cluster", "nodes": ["n:1"]}}),
        (
            {"auth": {"api_keys": [{"name": "a", "key": KEY, "policy": "all"}]}},
            {"auth": {"api_keys": [{"name": "a", "key": KEY, "policy": "safe"}]}},
        ),
        (
            {"auth": {"api_keys": [{"name": "a", "key": KEY}]}},  # rotation: a second key
            {"auth": {"api_keys": [{"name": "a", "key": KEY}, {"name": "b", "key": KEY[::-1]}]}},
        ),
        (
            {"auth": {"api_keys": [{"name": "a", "key": KEY, "key_prefix": "app:"}]}},
            {"auth": {"api_keys": [{"name": "a", "key": KEY, "key_prefix": "app:x:"}]}},
        ),
        (
            {},
            {"policy": {"denied_commands": ["FLUSHALL", "EVAL", *Config().policy.denied_commands]}},
        ),
        (
            {"server": {"cors": {"enabled": True, "allowed_origins": ["*"]}}},
            {"server": {"cors": {"enabled": True, "allowed_origins": ["https://a.example"]}}},
        ),
    ],
)
def test_safe_changes_are_not_held(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert held_reasons(_config(**old), _config(**new)) == []


# -- the reload transaction ------------------------------------------------------------


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.sock.close()


class Seen:
    """Records the hooks the watcher depends on."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        self.reads.append((fingerprint, settled))


def _watch_reload(env: Env, fingerprint: str) -> None:
    env.inbox.request_reload("watch: file changed: gateway.toml", fingerprint=fingerprint)
    env.arbiter.dispatch()
    env.arbiter.step()


def test_a_watcher_reload_holds_a_port_change_that_an_explicit_reload_applies(env: Env) -> None:
    seen = Seen()
    env.arbiter.hooks = seen
    env.boot()
    port = free_port()
    env.next_config = dataclasses.replace(loaded(port=port), inputs_fingerprint="fp-port")
    _watch_reload(env, "fp-port")
    outcome = env.arbiter.last_reload
    assert outcome is not None and outcome.result == "held"
    assert outcome.reasons == [f"server.port: listen address moves (18000 -> {port})"]
    assert not outcome.failed
    assert env.live(2) == [] and env.arbiter.version == 1  # nothing started
    assert env.arbiter.drift.state == "pending"
    assert env.arbiter.drift.reasons == outcome.reasons
    assert seen.reads == [("fp-port", True)]  # not reported again by the watcher
    status: dict[str, Any] = env.arbiter.status()
    assert status["drift"]["state"] == "pending"

    env.hup()  # the operator applies it
    env.arbiter.step()
    for w in env.live(2):
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "committed"
    assert env.arbiter.drift.state == "in_sync"
    assert env.arbiter.listeners[0].port == port
    env.arbiter.listeners[0].close()  # bound by the reload


def test_a_watcher_reload_that_read_other_bytes_is_deferred(env: Env) -> None:
    seen = Seen()
    env.arbiter.hooks = seen
    env.boot()
    env.next_config = dataclasses.replace(loaded(workers=3), inputs_fingerprint="fp-later")
    _watch_reload(env, "fp-settled")
    outcome = env.arbiter.last_reload
    assert outcome is not None and outcome.result == "deferred"
    assert env.live(2) == [] and env.arbiter.version == 1
    assert seen.reads == [("fp-later", False)]  # the watcher must look again
    assert env.arbiter.drift.state == "in_sync"  # nothing decided

    env.next_config = ConfigError(["gateway.toml: config file is empty"])
    env.next_config.inputs_fingerprint = "fp-empty-now"
    _watch_reload(env, "fp-settled")
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "deferred"


def test_a_watcher_reload_of_an_invalid_settled_file_is_rejected(env: Env) -> None:
    env.boot()
    error = ConfigError(["gateway.toml: config file is empty"])
    error.inputs_fingerprint = "fp-empty"
    env.next_config = error
    _watch_reload(env, "fp-empty")
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "invalid"
    assert env.arbiter.drift.state == "rejected"
    assert env.arbiter.drift.reasons == ["gateway.toml: config file is empty"]
    assert len(env.live(1)) == 2 and env.arbiter.version == 1


def test_a_watcher_reload_of_a_safe_change_commits(env: Env) -> None:
    env.boot()
    env.next_config = dataclasses.replace(loaded(workers=3), inputs_fingerprint="fp-3")
    _watch_reload(env, "fp-3")
    for w in env.live(2):
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "committed"


def test_an_explicit_request_coalesced_with_the_watchers_applies_held_changes(env: Env) -> None:
    env.boot()
    env.next_config = dataclasses.replace(loaded(port=free_port()), inputs_fingerprint="fp-other")
    env.inbox.request_reload("watch: file changed", fingerprint="fp-settled")
    env.hup()
    env.arbiter.step()
    for w in env.live(2):
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "committed"
    assert env.arbiter.last_reload.trigger == "watch: file changed,SIGHUP"
    env.arbiter.listeners[0].close()
