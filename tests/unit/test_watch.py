"""ConfigWatcher with real files in temp dirs: one callback per real content change."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from supervisor.triggers.watch import ConfigWatcher
from tests.helpers import wait_until

DEBOUNCE = 0.2
# After the first callback, how long we keep listening to assert that no second one
# comes: several debounce periods (this asserts absence; it does not synchronise).
QUIET_WINDOW = DEBOUNCE * 4


def hash_inputs(paths: Sequence[Path]) -> Callable[[], str]:
    """Content hash of files and of every regular entry of directories (through symlinks)."""

    def fingerprint() -> str:
        digest = hashlib.sha256()
        for path in paths:
            files = (
                sorted(p for p in path.iterdir() if not p.name.startswith(".."))
                if path.is_dir()
                else [path]
            )
            for file in files:
                digest.update(str(file).encode())
                digest.update(file.read_bytes() if file.exists() else b"<missing>")
        return digest.hexdigest()

    return fingerprint


class Recorder:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, reason: str, _fingerprint: str) -> None:
        with self._lock:
            self.reasons.append(reason)

    def count(self) -> int:
        with self._lock:
            return len(self.reasons)

    def expect_exactly_one(self) -> None:
        wait_until(lambda: self.count() >= 1, timeout=10, what="one on_change")
        deadline = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < deadline and self.count() == 1:
            time.sleep(0.02)
        assert self.count() == 1, self.reasons

    def expect_none(self) -> None:
        deadline = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < deadline and self.count() == 0:
            time.sleep(0.02)
        assert self.count() == 0, self.reasons


MakeWatcher = Callable[..., tuple[ConfigWatcher, Recorder]]


@pytest.fixture
def make_watcher() -> Iterator[MakeWatcher]:
    started: list[ConfigWatcher] = []

    def make(
        paths: Sequence[Path], recheck: float = 0.0, watch: Sequence[Path] | None = None
    ) -> tuple[ConfigWatcher, Recorder]:
        recorder = Recorder()
        watcher = ConfigWatcher(
            paths=list(paths if watch is None else watch),
            fingerprint=hash_inputs(paths),
            on_change=recorder,
            debounce_seconds=DEBOUNCE,
            recheck_interval_seconds=recheck,
        )
        watcher.start()
        started.append(watcher)
        return watcher, recorder

    yield make
    for watcher in started:
        watcher.stop()


def test_in_place_editor_write_triggers_exactly_one(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nport = 8080\n")
    _, recorder = make_watcher([config])
    # An editor writing in place: truncate, then several writes (modified x3).
    with config.open("w") as fh:
        for chunk in ("[server]\n", "port = 9000\n", "workers = 2\n"):
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    recorder.expect_exactly_one()
    assert str(config) in recorder.reasons[0]


def test_atomic_save_triggers_exactly_one(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nport = 8080\n")
    _, recorder = make_watcher([config])
    tmp = tmp_path / ".gateway.toml.tmp"
    tmp.write_text("[server]\nport = 9000\n")
    os.replace(tmp, config)
    recorder.expect_exactly_one()


def test_touch_without_content_change_triggers_nothing(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nport = 8080\n")
    _, recorder = make_watcher([config])
    config.touch()
    os.utime(config, (time.time() + 10, time.time() + 10))
    config.write_text("[server]\nport = 8080\n")  # same bytes rewritten
    recorder.expect_none()


def test_unrelated_file_in_same_directory_triggers_nothing(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    _, recorder = make_watcher([config])
    (tmp_path / "other.txt").write_text("noise")
    recorder.expect_none()


def _kubelet_publish(mount: Path, data: dict[str, str], stamp: str) -> None:
    """What kubelet's AtomicWriter does: new timestamped dir, ..data_tmp, rename over ..data."""
    ts_dir = mount / f"..{stamp}"
    ts_dir.mkdir()
    for key, value in data.items():
        (ts_dir / key).write_text(value)
    tmp_link = mount / "..data_tmp"
    tmp_link.symlink_to(ts_dir.name)
    os.rename(tmp_link, mount / "..data")
    for key in data:
        key_link = mount / key
        if not key_link.is_symlink():
            key_link.symlink_to(Path("..data") / key)


def test_kubelet_data_symlink_swap_triggers_exactly_one(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    mount = tmp_path / "configmap"
    mount.mkdir()
    _kubelet_publish(mount, {"server.port": "8080", "server.workers": "2"}, "2026_11_26_07_00_00.1")
    _, recorder = make_watcher([mount])
    old_dir = mount / "..2026_11_26_07_00_00.1"
    _kubelet_publish(mount, {"server.port": "9000", "server.workers": "2"}, "2026_11_26_07_01_00.2")
    for entry in old_dir.iterdir():  # kubelet then removes the old timestamped dir
        entry.unlink()
    old_dir.rmdir()
    recorder.expect_exactly_one()
    assert (mount / "server.port").read_text() == "9000"


def test_kubelet_key_symlink_watched_as_a_file(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    """A main file that is itself a ConfigMap key symlink (`gateway.toml -> ..data/...`)."""
    mount = tmp_path / "etc"
    mount.mkdir()
    _kubelet_publish(mount, {"gateway.toml": "a = 1\n"}, "2026_11_26_07_00_00.1")
    _, recorder = make_watcher([mount / "gateway.toml"])
    _kubelet_publish(mount, {"gateway.toml": "a = 2\n"}, "2026_11_26_07_01_00.2")
    recorder.expect_exactly_one()


def test_periodic_recheck_catches_change_without_watch_events(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    # Nothing watched: only the periodic re-check can notice.
    _, recorder = make_watcher([config], recheck=0.1, watch=[])
    config.write_text("a = 2\n")
    recorder.expect_exactly_one()
    assert "re-check" in recorder.reasons[0]


def test_acknowledge_suppresses_a_change_already_loaded(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    watcher, recorder = make_watcher([config], recheck=0.1, watch=[])
    config.write_text("a = 2\n")
    watcher.acknowledge(hash_inputs([config])())
    recorder.expect_none()


def test_update_moves_the_watch_to_new_paths(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x").write_text("1")
    (second / "y").write_text("1")
    watcher, recorder = make_watcher([first, second], watch=[first])
    watcher.update([second])
    (second / "y").write_text("2")
    recorder.expect_exactly_one()


def test_failing_fingerprint_does_not_kill_the_watcher(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("half-written")
        return config.read_text()

    recorder = Recorder()
    watcher = ConfigWatcher([config], flaky, recorder, 0.0, 0.05)
    watcher.start()
    try:
        config.write_text("a = 2\n")
        wait_until(lambda: recorder.count() == 1, timeout=10, what="change after a failure")
    finally:
        watcher.stop()
    assert calls["n"] >= 3


def test_reconfigure_turns_the_periodic_recheck_on(
    tmp_path: Path, make_watcher: MakeWatcher
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    watcher, recorder = make_watcher([config], recheck=0.0, watch=[])
    config.write_text("a = 2\n")
    recorder.expect_none()  # nothing watched, no re-check: unnoticed
    watcher.reconfigure(debounce_seconds=DEBOUNCE, recheck_interval_seconds=0.1)
    recorder.expect_exactly_one()


def test_stop_then_start_watches_again(tmp_path: Path, make_watcher: MakeWatcher) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("a = 1\n")
    watcher, recorder = make_watcher([config])
    watcher.stop()
    watcher.start()
    config.write_text("a = 2\n")
    recorder.expect_exactly_one()
