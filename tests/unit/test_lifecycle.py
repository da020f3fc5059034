"""supervisor.reload.lifecycle with the real loader on temp files: each drift state, the
restore pin (set, released when the files match, dropped on a failed reload or on
request), plans, and `run --resume-last-good` inputs giving way to valid sources."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, cast

import pytest

from supervisor.config import ConfigInputs, LoadedConfig, load_config
from supervisor.config.restore import Restore
from supervisor.config.store import StateStore
from supervisor.reload.drift import DriftState
from supervisor.reload.lifecycle import Lifecycle, Resumed
from supervisor.reload.outcome import ReloadOutcome, ReloadResult

KEY = b"k" * 32
load = functools.partial(load_config, fingerprint_key=KEY)


class Files:
    def __init__(self, tmp_path: Path) -> None:
        self.main = tmp_path / "gateway.toml"
        self.inputs = ConfigInputs(config_path=self.main, env={})
        self.write(workers=1)

    def write(self, **server: object) -> None:
        lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in server.items())
        self.main.write_text(f"[server]\n{lines}")

    def load(self) -> LoadedConfig:
        return load(self.inputs)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def state(life: Lifecycle) -> DriftState:
    return life.drift.state


def committed(loaded: LoadedConfig, version: int = 2, trigger: str = "SIGHUP") -> ReloadOutcome:
    return ReloadOutcome(ReloadResult.COMMITTED, trigger, version, loaded.hash)


def test_each_drift_state(files: Files) -> None:
    running = files.load()
    life = Lifecycle(files.inputs, running, load, None)
    assert not life.check(running) and state(life) is DriftState.IN_SYNC
    files.write(workers=2)
    assert life.check(running)
    assert state(life) is DriftState.PENDING
    assert life.drift.reasons == ["the sources changed: server.workers (not reloaded yet)"]
    files.main.write_text("[server\n")
    life.check(running)
    assert state(life) is DriftState.REJECTED and "invalid TOML" in life.drift.reasons[0]
    files.main.write_text('[server]\nworkers = 1\n[supervisor]\ncontrol_socket = "/tmp/x.sock"\n')
    life.check(running)
    assert state(life) is DriftState.RESTART_REQUIRED
    # Committed anyway: still restart_required until a restart (the boot config differs).
    new = files.load()
    life.after(committed(new), new)
    assert state(life) is DriftState.RESTART_REQUIRED
    life.check(new)
    assert state(life) is DriftState.RESTART_REQUIRED


def test_diff_rows_name_both_sides_and_hide_secrets(files: Files) -> None:
    running = files.load()
    life = Lifecycle(files.inputs, running, load, None)
    files.main.write_text('[server]\nworkers = 3\n[auth]\njwt_secret = "s3cret-s3cret-s3cret"\n')
    reply = life.diff(running)
    rows = {str(r["key"]): r for r in cast(list[dict[str, Any]], reply["rows"])}
    assert set(rows) == {"server.workers", "auth.jwt_secret"}
    assert rows["server.workers"]["running"] == {"value": 1, "source": f"file {files.main}:2"}
    assert rows["server.workers"]["sources"] == {"value": 3, "source": f"file {files.main}:2"}
    assert "s3cret" not in repr(reply)


def test_a_restore_pin_holds_until_the_files_match(files: Files, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.ensure()
    v1 = files.load()
    store.commit(v1, version=1, trigger="start")
    files.write(workers=2)
    v2 = files.load()
    life = Lifecycle(files.inputs, v1, load, store)
    refused = life.restore(1, 5, 2, dry_run=False, running=v2)
    assert refused is not None and refused["conflict"] is True
    assert refused["error"] == (
        "the running version is 2, not 5: something changed meanwhile; nothing was restored"
    )
    assert life.pinned is None
    assert life.restore(1, None, 2, dry_run=False, running=v2) is None
    assert life.pinned == "backup v1"
    restored = load(life.reload_inputs())
    assert restored.hash == v1.hash
    life.after(committed(restored, version=3, trigger="restore v1"), restored)
    life.check(restored)
    assert state(life) is DriftState.PENDING and life.pinned == "backup v1"
    assert "the files differ in server.workers" in life.drift.reasons[0]
    files.write(workers=1)  # brought in line
    assert life.check(restored)
    assert state(life) is DriftState.IN_SYNC and life.pinned is None


def test_a_failed_restore_leaves_the_previous_inputs(files: Files, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.ensure()
    v1 = files.load()
    store.commit(v1, version=1, trigger="start")
    life = Lifecycle(files.inputs, v1, load, store)
    assert life.restore(1, None, 1, dry_run=False, running=v1) is None
    failed = ReloadOutcome(ReloadResult.READINESS_FAILED, "restore v1", 1, v1.hash, error="x")
    life.after(failed, v1)
    assert life.pinned is None
    assert life.restore(1, None, 1, dry_run=False, running=v1) is None
    assert life.discard_restore() and life.pinned is None and not life.discard_restore()


def test_plan_validates_a_candidate_without_applying_it(files: Files) -> None:
    running = files.load()
    life = Lifecycle(files.inputs, running, load, None)
    good = life.plan(running, '{"server": {"workers": 4}}', "json")
    assert good["valid"] is True
    assert [r["key"] for r in cast(list[dict[str, Any]], good["rows"])] == ["server.workers"]
    bad = life.plan(running, "[server]\nworkers = 0\n", "toml")
    assert bad["valid"] is False
    assert any("server.workers" in p for p in cast(list[str], bad["problems"]))
    assert files.load().hash == running.hash  # nothing written, nothing applied


def test_resumed_inputs_give_way_once_the_sources_are_valid(files: Files, tmp_path: Path) -> None:
    good = files.load()
    files.main.write_text("[server\n")
    pinned = dataclasses.replace(
        files.inputs,
        config_path=None,
        restore=Restore("backup v1", {"server": {"workers": 1}}, until_valid=True),
    )
    life = Lifecycle(files.inputs, good, load, None, resumed=Resumed(pinned, ["broken"]))
    assert state(life) is DriftState.REJECTED
    assert life.reload_inputs() is pinned  # still invalid: keep serving the backup
    files.write(workers=2)
    assert life.reload_inputs() == files.inputs and life.pinned is None
