"""Generations and listeners: the part of the arbiter the reload transaction drives
(``supervisor.reload.Host``), and the status report built from them.

A mixin of ``supervisor.arbiter.Arbiter``, which owns every attribute declared here.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from gateway_worker.config import Config
from supervisor.config import LoadedConfig
from supervisor.sockets import Listener, bind, same_address
from supervisor.worker_process import WorkerState

if TYPE_CHECKING:
    from supervisor.drift import Drift
    from supervisor.reload import ReloadOutcome, ReloadTransaction

log = structlog.get_logger("redis_gateway.arbiter")


class Generations:
    """Start, switch and commit worker generations; report status."""

    current: LoadedConfig
    version: int
    generation: int
    _last_generation: int
    desired_workers: int
    workers: list[Any]
    listeners: list[Listener]
    _old_listeners: list[Listener]
    worker_config: Config
    prepare_config: Callable[[Config], Config]
    _factory: Callable[[int, int, int, Config, list[Listener]], Any]
    hooks: Any
    reload: ReloadTransaction | None
    reload_counts: collections.Counter[str]
    last_reload: ReloadOutcome | None
    started_at: float
    stopping: str | None
    drift: Drift

    def start_generation(self, generation: int, config: Config,
                         listeners: list[Listener]) -> list[Any]:
        worker_config = self.prepare_config(config)
        started = [self._factory(generation, slot, 0, worker_config, listeners)
                   for slot in range(config.server.workers)]
        self.workers.extend(w for w in started if w not in self.workers)
        log.info("generation.starting", generation=generation,
                 pids=[w.pid for w in started])
        return started

    def new_generation_number(self) -> int:
        """Never reused, even after a failed reload, so pids group unambiguously."""
        self._last_generation += 1
        return self._last_generation

    def listener_for(self, config: Config) -> tuple[list[Listener], Listener | None]:
        """Current listeners, or a newly bound one when the address changed."""
        host, port = config.server.host, config.server.port
        if all(same_address(lst, host, port) for lst in self.listeners):
            if any(lst.from_systemd and lst.port != port for lst in self.listeners):
                log.warning("reload.address_ignored", reason="socket passed by systemd",
                            configured=f"{host}:{port}",
                            listening=[f"{lst.host}:{lst.port}" for lst in self.listeners])
            return self.listeners, None
        new = bind(host, port)
        return [new], new

    def switch_generation(self, generation: int, loaded: LoadedConfig,
                          listeners: list[Listener]) -> list[Any]:
        """New generation serves from now on; drain and return the old workers."""
        old_timeout = self.current.config.server.graceful_shutdown_timeout_seconds
        old = [w for w in self.workers if w.generation < generation and w.alive]
        for w in old:
            w.drain(old_timeout)
        log.info("generation.draining", generation=self.generation,
                 pids=[w.pid for w in old], timeout=old_timeout)
        if listeners is not self.listeners:
            self._old_listeners.extend(self.listeners)
            self.listeners = listeners
        self.generation = generation
        self.desired_workers = loaded.config.server.workers
        self.worker_config = self.prepare_config(loaded.config)
        return old

    def commit(self, loaded: LoadedConfig, outcome: ReloadOutcome) -> None:
        self.current = loaded
        self.version = outcome.version
        for lst in self._old_listeners:
            lst.close()
        self._old_listeners.clear()
        self.hooks.committed(loaded)

    def status(self) -> dict[str, Any]:
        cfg = self.current.config
        return {
            "pid": os.getpid(),
            "generation": self.generation,
            "version": self.version,
            "hash": self.current.hash,
            "profile": cfg.profile,
            # Which layer set each key (names of files/env vars, never values).
            "provenance": self.current.provenance,
            "desired_workers": self.desired_workers,
            "listen": [f"{lst.host}:{lst.port}" for lst in self.listeners],
            "workers": [w.describe() for w in self.workers],
            "reload_in_progress": self.reload is not None,
            "reloads": dict(self.reload_counts),
            "last_reload": self.last_reload.as_dict() if self.last_reload else None,
            "drift": self.drift.as_dict(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "stopping": self.stopping,
        }

    def status_line(self) -> str:
        serving = sum(1 for w in self.workers if w.state == WorkerState.READY
                      and w.generation == self.generation)
        return (f"serving: generation {self.generation}, {serving} workers, "
                f"config v{self.version} ({self.current.hash})")
