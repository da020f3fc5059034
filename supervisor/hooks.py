"""Side effects of the supervisor's lifecycle: the ``Hooks`` protocol and ``FanOut``.

The arbiter, the generations and the worker pool announce what happened; services
(``supervisor.services``: logging, watcher, metrics, systemd, memory) act on it. Each
service implements every hook (most are no-ops for it); ``FanOut`` calls them in the
order given, so the builder decides, e.g., that logging is reconfigured before the
other services log under the new config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from supervisor.config import LoadedConfig
from supervisor.reload.outcome import ReloadOutcome
from supervisor.workers.handle import WorkerHandle


class Hooks(Protocol):
    """What services hear of the supervisor's life. Every call comes from the main loop.

    The pool and the generations are handed the same object but see only their part
    (``supervisor.workers.handle.WorkerEvents``,
    ``supervisor.reload.generations.CommitEvents``: structurally, every Hooks is both),
    so neither depends on this module."""

    def ready(self, status: str) -> None:
        """The first generation is serving (``status``: one line for systemd)."""

    def reloading(self) -> None:
        """A reload transaction starts."""

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        """The reload read inputs with this fingerprint; not ``settled``: they were not
        the bytes the watcher saw settle, so the watcher must look again."""

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        """A new config became current (before ``reload_finished``)."""

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        """A reload ended (any result)."""

    def stopping(self) -> None:
        """A stop was requested."""

    def worker_exited(self, pid: int) -> None:
        """A worker process is gone (clean up its per-process metrics)."""

    def worker_restarted(self) -> None:
        """A worker is being replaced after it crashed."""

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen log files."""

    def drift_changed(self, state: str) -> None:
        """The drift state changed (``supervisor.reload.drift``)."""

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        """Once per main-loop iteration (gauges, watchdog pings)."""


class FanOut:
    """Hooks that call every one of ``hooks`` in order (none: all no-ops)."""

    def __init__(self, *hooks: Hooks) -> None:
        self.hooks = hooks

    def ready(self, status: str) -> None:
        for h in self.hooks:
            h.ready(status)

    def reloading(self) -> None:
        for h in self.hooks:
            h.reloading()

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        for h in self.hooks:
            h.inputs_read(fingerprint, settled)

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        for h in self.hooks:
            h.committed(loaded, version)

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        for h in self.hooks:
            h.reload_finished(outcome, status)

    def stopping(self) -> None:
        for h in self.hooks:
            h.stopping()

    def worker_exited(self, pid: int) -> None:
        for h in self.hooks:
            h.worker_exited(pid)

    def worker_restarted(self) -> None:
        for h in self.hooks:
            h.worker_restarted()

    def reopen_logs(self) -> None:
        for h in self.hooks:
            h.reopen_logs()

    def drift_changed(self, state: str) -> None:
        for h in self.hooks:
            h.drift_changed(state)

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        for h in self.hooks:
            h.tick(workers)
