"""Real worker processes: the factory the pool spawns through, and its warm standbys.

A standby is a worker interpreter that has imported everything and waits for a
config on its pipe (``WorkerProcess.spawn(None, ...)``). A reload or a crash
replacement hands the config to one instead of booting a new interpreter (~0.3 s of
CPU each), which is most of a reload's latency. At most ``STANDBY_MAX`` are kept (and
at most the worker count); a standby is only used with the listening sockets and the
environment it was started with, else it is discarded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway_worker.config import Config
from supervisor.sockets import Listener
from supervisor.workers.handle import WorkerEvents
from supervisor.workers.pool import Clock
from supervisor.workers.process import WorkerProcess
from supervisor.workers.setup import WorkerSetup

STANDBY_MAX = 4
STANDBY_SPAWN_INTERVAL_SECONDS = 0.1


@dataclass
class _Waiting:
    worker: WorkerProcess
    listeners: list[Listener]
    env: dict[str, str]

    def fits(self, listeners: list[Listener], env: dict[str, str]) -> bool:
        return (
            len(self.listeners) == len(listeners)
            and env == self.env
            and all(a is b for a, b in zip(self.listeners, listeners, strict=True))
        )


class StandbyWorkers:
    """Pre-imported worker processes waiting for a config (a ``pool.Standby``)."""

    def __init__(
        self, setup: WorkerSetup, hooks: WorkerEvents, clock: Clock = time.monotonic
    ) -> None:
        self._setup = setup
        self._hooks = hooks
        self._clock = clock
        self._waiting: list[_Waiting] = []
        self._next_spawn_at = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def take(self, listeners: list[Listener]) -> WorkerProcess | None:
        """A live standby holding exactly these listeners, or None."""
        env = self._setup.env()
        while self._waiting:
            entry = self._waiting.pop(0)
            if entry.worker.poll() or not entry.fits(listeners, env):
                self._discard(entry.worker)
                continue
            return entry.worker
        return None

    def replenish(self, listeners: list[Listener], desired: int) -> None:
        """Forget exited standbys; start one more (one at a time: a burst of interpreter
        boots would steal CPU from serving) while fewer than ``desired`` wait."""
        env = self._setup.env()
        for entry in list(self._waiting):
            if entry.worker.poll():
                self._waiting.remove(entry)
                entry.worker.close()
            elif entry.env != env:  # e.g. started before metrics were turned on
                self._waiting.remove(entry)
                self._discard(entry.worker)
        now = self._clock()
        if len(self._waiting) < min(desired, STANDBY_MAX) and now >= self._next_spawn_at:
            worker = WorkerProcess(generation=0, slot=-1)
            worker.spawn(None, [lst.fd for lst in listeners], env)
            self._waiting.append(_Waiting(worker, list(listeners), env))
            self._next_spawn_at = now + STANDBY_SPAWN_INTERVAL_SECONDS

    def discard_all(self) -> None:
        for entry in self._waiting:
            self._discard(entry.worker)
        self._waiting.clear()

    def _discard(self, worker: WorkerProcess) -> None:
        if worker.kill_and_wait():
            self._hooks.worker_exited(worker.pid)
        worker.close()


class ProcessFactory:
    """The pool's ``WorkerFactory``: a warm standby when one fits, else a new process."""

    def __init__(self, setup: WorkerSetup, standby: StandbyWorkers) -> None:
        self._setup = setup
        self._standby = standby

    def __call__(
        self, generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> WorkerProcess:
        worker = self._standby.take(listeners)
        if worker is not None:
            worker.generation, worker.slot, worker.restarts = generation, slot, restarts
            worker.send_config(config)
            return worker
        worker = WorkerProcess(generation, slot, restarts)
        worker.spawn(config, [lst.fd for lst in listeners], self._setup.env())
        return worker
