"""The worker pool: every worker process of every generation, and what happens to them.

Spawns through a ``WorkerFactory`` (real processes, warm standbys first; fakes in the
unit tests), reaps, enforces kill deadlines, notices missed heartbeats and replacements
that never became ready, replaces crashed workers with a backoff
(``supervisor.workers.backoff``), scales the serving generation to its desired count, and keeps
the warm standby workers topped up. Every deadline comes from
``gateway_worker.serving.drain``. The arbiter decides *what* should run; the pool makes
the processes match (``enforce_deadlines`` + ``reconcile``, once per loop iteration).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway_worker.config import Config
from gateway_worker.serving.drain import (
    ABANDON_KILL_SECONDS,
    FAST_STOP_KILL_SECONDS,
    START_TIMEOUT_KILL_SECONDS,
    DrainPolicy,
)
from supervisor.sockets import Listener
from supervisor.workers.backoff import CrashBackoff
from supervisor.workers.handle import WorkerEvents, WorkerFactory, WorkerHandle, WorkerState

log = structlog.get_logger("redis_gateway.arbiter")

Clock = Callable[[], float]


class Standby(Protocol):
    """Warm standby workers the factory hands out first (``supervisor.workers.standby``)."""

    def __len__(self) -> int: ...
    def replenish(self, listeners: list[Listener], desired: int) -> None:
        """Forget exited standbys; start one more if fewer than ``desired`` wait."""

    def discard_all(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """What the serving generation should look like."""

    generation: int
    workers: int
    config: Config  # as the workers receive it
    listeners: list[Listener]


class WorkerPool:
    """Owns the worker handles; all of its methods run on the main loop."""

    def __init__(
        self,
        factory: WorkerFactory,
        hooks: WorkerEvents,
        clock: Clock,
        standby: Standby | None = None,
    ) -> None:
        self.factory = factory
        self.workers: list[WorkerHandle] = []
        self.standby = standby
        self.backoff = CrashBackoff()
        self._hooks = hooks
        self._clock = clock

    # -- starting and stopping -------------------------------------------------------------

    def spawn(
        self, generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> WorkerHandle:
        if restarts:
            self._hooks.worker_restarted()
        worker = self.factory(generation, slot, restarts, config, listeners)
        self.workers.append(worker)
        return worker

    def start_generation(
        self, generation: int, count: int, config: Config, listeners: list[Listener]
    ) -> list[WorkerHandle]:
        """All workers of a new generation at once. OSError (fork/exec failed): the ones
        already started are stopped again, and the error raised."""
        started: list[WorkerHandle] = []
        try:
            for slot in range(count):
                started.append(self.spawn(generation, slot, 0, config, listeners))
        except OSError:
            self.abandon(started)
            raise
        log.info("generation.starting", generation=generation, worker_pids=[w.pid for w in started])
        return started

    def drain(self, workers: Sequence[WorkerHandle], kill_after: float) -> None:
        for w in workers:
            w.drain(kill_after)

    def abandon(self, workers: Sequence[WorkerHandle]) -> None:
        """Stop workers of a generation that will never serve (SIGKILL soon)."""
        self.drain(workers, ABANDON_KILL_SECONDS)

    def drain_before(self, generation: int, kill_after: float) -> list[WorkerHandle]:
        """Drain every worker of the generations before ``generation``; returns them."""
        old = [w for w in self.workers if w.generation < generation and w.alive]
        self.drain(old, kill_after)
        return old

    def quit_all(self) -> None:
        """Fast stop: every worker exits at once (SIGQUIT), SIGKILL shortly after."""
        deadline = self._clock() + FAST_STOP_KILL_SECONDS
        for w in self.workers:
            w.signal(signal.SIGQUIT)
            w.state = WorkerState.DRAINING
            w.stop_requested = True
            w.kill_deadline = deadline

    def signal_all(self, sig: int) -> None:
        for w in self.workers:
            w.signal(sig)

    def kill_all(self) -> None:
        for w in self.workers:
            w.kill()

    def reap(self) -> list[WorkerHandle]:
        """Forget the workers that exited since the last call, and return them."""
        exited = [w for w in self.workers if w.poll()]
        for w in exited:
            self._hooks.worker_exited(w.pid)
            w.close()
        self.workers = [w for w in self.workers if w.alive]
        return exited

    def close(self) -> None:
        """Teardown: kill and wait for every worker and standby."""
        if self.standby is not None:
            self.standby.discard_all()
        for w in self.workers:
            if w.kill_and_wait():
                self._hooks.worker_exited(w.pid)
            w.close()
        self.workers = []

    # -- reconciling -----------------------------------------------------------------------

    def crashed(self, worker: WorkerHandle, config: Config) -> float:
        """Count an unexpected exit; returns the delay before its replacement starts."""
        return self.backoff.crashed(
            worker.generation,
            worker.slot,
            self._clock(),
            config.supervisor.restart_backoff_max_seconds,
            serving=self.serving(worker.generation),
        )

    def serving(self, generation: int) -> bool:
        """Whether a worker of ``generation`` is ready (accepting connections)."""
        return any(
            w.state is WorkerState.READY and w.generation == generation for w in self.workers
        )

    def enforce_deadlines(self, config: Config, serving: int, booted: bool) -> None:
        """Kill deadlines, missed heartbeats, replacements that never became ready."""
        now = self._clock()
        policy = DrainPolicy.from_config(config.server)
        for w in self.workers:
            if w.kill_deadline is not None and now >= w.kill_deadline and w.alive:
                log.warning(
                    "worker.killed",
                    worker_pid=w.pid,
                    generation=w.generation,
                    reason="deadline passed",
                )
                w.kill()
            elif w.state == WorkerState.READY and (
                now - w.last_heartbeat > config.supervisor.heartbeat_timeout_seconds
            ):
                log.warning(
                    "worker.heartbeat_missed",
                    worker_pid=w.pid,
                    silent_seconds=round(now - w.last_heartbeat, 1),
                )
                w.drain(policy.unresponsive_kill_after(config.supervisor))
            elif (
                booted
                and w.state == WorkerState.STARTING
                and w.generation == serving
                and now - w.started_at > config.server.reload_readiness_timeout_seconds
            ):
                # A replacement that never became ready (reload workers have their own
                # deadline in the transaction, and belong to generation + 1).
                log.warning("worker.start_timeout", worker_pid=w.pid)
                w.drain(START_TIMEOUT_KILL_SECONDS)

    def reconcile(self, target: Target, config: Config) -> None:
        """Spawn missing workers of the serving generation (after the crash backoff) or
        drain the extra ones; ``config`` is the running config (its deadlines)."""
        now = self._clock()
        current = [
            w
            for w in self.workers
            if w.generation == target.generation
            and w.state in (WorkerState.STARTING, WorkerState.READY)
        ]
        cap = config.supervisor.restart_backoff_max_seconds
        ready = [w for w in current if w.state is WorkerState.READY]
        if self.backoff.rounds and any(now - w.started_at >= cap for w in ready):
            self.backoff.healthy()
        if ready and self.backoff.probing:
            self.backoff.recovered(now)
        # In a crash loop with nothing serving, one probe at a time (backoff.py).
        # The probe that is starting is waited for: ready, or one more crash round.
        probe = not ready and self.backoff.rounds > 0
        if (
            len(current) < target.workers
            and not (probe and current)
            and self.backoff.may_spawn(now, serving=bool(ready))
        ):
            self._spawn_missing(target, current, now, probe)
        elif len(current) > target.workers:
            extra = sorted(current, key=lambda w: w.slot)[target.workers :]
            self.drain(extra, DrainPolicy.from_config(config.server).kill_after_seconds)

    def _spawn_missing(
        self, target: Target, current: list[WorkerHandle], now: float, probe: bool
    ) -> None:
        used = {w.slot for w in current}
        wanted = min(target.workers, len(current) + 1) if probe else target.workers
        for slot in range(target.workers):
            if len(current) >= wanted:
                break
            if slot in used:
                continue
            restarts = self.backoff.restarts(target.generation, slot)
            try:
                w = self.spawn(target.generation, slot, restarts, target.config, target.listeners)
            except OSError as exc:  # fork/exec failed: retry later, never crash
                log.error("worker.spawn_failed", error=str(exc), slot=slot)  # noqa: TRY400 - expected condition
                self.backoff.spawn_failed(now)
                break
            self.backoff.spawned(probe)
            current.append(w)
            log.info("worker.spawned", worker_pid=w.pid, generation=target.generation, slot=slot)

    def replenish_standby(self, listeners: list[Listener], desired: int, busy: bool) -> None:
        """Keep pre-imported standby workers (``supervisor.workers.standby``), but none is added
        while the supervisor is ``busy`` or a worker starts: those get the CPU first."""
        if self.standby is None:
            return
        if busy or any(w.state == WorkerState.STARTING for w in self.workers):
            desired = 0  # only forget the standbys that exited
        self.standby.replenish(listeners, desired)

    @property
    def standby_count(self) -> int:
        return 0 if self.standby is None else len(self.standby)
