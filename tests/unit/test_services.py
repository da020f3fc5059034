"""The supervisor's services re-applied from a reloaded config (real ConfigWatcher)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ConfigInputs, LoadedConfig, load_config
from supervisor.services.watcher import WatcherService, watched_paths
from supervisor.triggers.inbox import Waiter
from supervisor.triggers.watch import ConfigWatcher


class Triggers:
    """Records the reloads the watcher asks for (what the inbox would queue)."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def request_reload(
        self, trigger: str, waiter: Waiter | None = None, fingerprint: str | None = None
    ) -> None:
        self.changes.append(trigger.removeprefix("watch: "))


class Host:
    def __init__(self, inputs: ConfigInputs, loaded: LoadedConfig) -> None:
        self.inputs, self.loaded = inputs, loaded
        self.triggers = Triggers()
        self.changes = self.triggers.changes
        self.service = WatcherService(inputs, loaded, self.triggers)

    @property
    def watcher(self) -> ConfigWatcher | None:
        return self.service.watcher

    def acknowledge_inputs(self) -> None:
        self.service.acknowledge_inputs()


def _load(path: Path, text: str) -> tuple[ConfigInputs, LoadedConfig]:
    path.write_text(text)
    inputs = ConfigInputs(config_path=path, env={})
    return inputs, load_config(inputs)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    inputs, loaded = _load(tmp_path / "gateway.toml", "[supervisor]\nwatch_config = true\n")
    h = Host(inputs, loaded)
    try:
        yield h
    finally:
        h.service.close()


def _apply(host: Host, text: str) -> Any:
    _, host.loaded = _load(Path(str(host.inputs.config_path)), text)
    host.service.committed(host.loaded, version=2)
    return host.watcher


def test_watcher_follows_watch_config_and_its_timings(host: Host) -> None:
    first = _apply(host, "[supervisor]\nwatch_config = true\n")
    assert isinstance(first, ConfigWatcher)
    same = _apply(
        host,
        "[supervisor]\nwatch_config = true\nwatch_debounce_ms = 2500\n"
        "recheck_interval_seconds = 7\n",
    )
    assert same is first
    assert (same._debounce, same._recheck) == (2.5, 7.0)
    assert _apply(host, "[supervisor]\nwatch_config = false\n") is None
    assert first._thread is None  # stopped, threads joined
    again = _apply(host, "[supervisor]\nwatch_config = true\n")
    assert isinstance(again, ConfigWatcher) and again is not first


def test_acknowledged_inputs_are_not_reported_again(host: Host) -> None:
    # A long debounce: only the test decides when the watcher looks.
    # No settle interval: the file events of the writes below must not count as
    # "still being written" when the test calls the check itself.
    watcher = _apply(
        host, "[supervisor]\nwatch_config = true\nwatch_debounce_ms = 60000\nwatch_settle_ms = 0\n"
    )
    assert isinstance(watcher, ConfigWatcher)
    path = Path(str(host.inputs.config_path))
    path.write_text("[supervisor]\nwatch_config = true\nwatch_debounce_ms = 1\n")
    host.acknowledge_inputs()
    watcher._check("test")  # what the debounce expiry does
    assert host.changes == []
    path.write_text("[supervisor]\nwatch_config = true\nwatch_debounce_ms = 2\n")
    watcher._check("test")
    assert host.changes == ["test"]


def test_profile_overlays_are_watched_beside_the_main_file(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    inputs, loaded = _load(main, 'profile = "dev"\n')
    paths = watched_paths(inputs, loaded)
    assert main in paths
    assert tmp_path / "gateway.dev.toml" in paths and tmp_path / "gateway.dev.yaml" in paths
    assert not any("prod" in p.name for p in paths)
