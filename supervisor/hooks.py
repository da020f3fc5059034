"""Side effects of the supervisor's lifecycle: the ``Hooks`` protocol and ``FanOut``.

The arbiter, the generations and the worker pool announce what happened (``Hooks``);
services (``supervisor.services``: logging, watcher, metrics, systemd, state, memory, ...)
act on it. Each service implements only the events it cares about; ``Listeners`` (built
once, by ``supervisor.builder``) says who hears which event and in which order, e.g. that
logging is reconfigured before the other services log under the new config; ``FanOut``
calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


class OnReady(Protocol):
    def ready(self, status: str) -> None: ...


class OnReloading(Protocol):
    def reloading(self) -> None: ...


class OnInputsRead(Protocol):
    def inputs_read(self, fingerprint: str, settled: bool) -> None: ...


class OnCommitted(Protocol):
    def committed(self, loaded: LoadedConfig, version: int) -> None: ...


class OnReloadFinished(Protocol):
    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None: ...


class OnStopping(Protocol):
    def stopping(self) -> None: ...


class OnWorkerExited(Protocol):
    def worker_exited(self, pid: int) -> None: ...


class OnWorkerRestarted(Protocol):
    def worker_restarted(self) -> None: ...


class OnReopenLogs(Protocol):
    def reopen_logs(self) -> None: ...


class OnDriftChanged(Protocol):
    def drift_changed(self, state: str) -> None: ...


class OnTick(Protocol):
    def tick(self, workers: Sequence[WorkerHandle]) -> None: ...


@dataclass(frozen=True)
class Listeners:
    """Who hears which event, in the order they are called (the builder's wiring)."""

    ready: Sequence[OnReady] = ()
    reloading: Sequence[OnReloading] = ()
    inputs_read: Sequence[OnInputsRead] = ()
    committed: Sequence[OnCommitted] = ()
    reload_finished: Sequence[OnReloadFinished] = ()
    stopping: Sequence[OnStopping] = ()
    worker_exited: Sequence[OnWorkerExited] = ()
    worker_restarted: Sequence[OnWorkerRestarted] = ()
    reopen_logs: Sequence[OnReopenLogs] = ()
    drift_changed: Sequence[OnDriftChanged] = ()
    tick: Sequence[OnTick] = ()


class FanOut:
    """``Hooks`` that call each event's listeners in order (none given: all no-ops).

    A service implements only the events it acts on; ``Listeners`` says who hears what,
    and mypy checks each listener against its event's protocol."""

    def __init__(self, listeners: Listeners | None = None) -> None:
        self.listeners = listeners or Listeners()

    def ready(self, status: str) -> None:
        for h in self.listeners.ready:
            h.ready(status)

    def reloading(self) -> None:
        for h in self.listeners.reloading:
            h.reloading()

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        for h in self.listeners.inputs_read:
            h.inputs_read(fingerprint, settled)

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        for h in self.listeners.committed:
            h.committed(loaded, version)

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        for h in self.listeners.reload_finished:
            h.reload_finished(outcome, status)

    def stopping(self) -> None:
        for h in self.listeners.stopping:
            h.stopping()

    def worker_exited(self, pid: int) -> None:
        for h in self.listeners.worker_exited:
            h.worker_exited(pid)

    def worker_restarted(self) -> None:
        for h in self.listeners.worker_restarted:
            h.worker_restarted()

    def reopen_logs(self) -> None:
        for h in self.listeners.reopen_logs:
            h.reopen_logs()

    def drift_changed(self, state: str) -> None:
        for h in self.listeners.drift_changed:
            h.drift_changed(state)

    def tick(self, workers: Sequence[WorkerHandle]) -> None:
        for h in self.listeners.tick:
            h.tick(workers)
