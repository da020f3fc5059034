"""Which generation serves, with which config, listening sockets and worker count:
numbering, switching and committing generations (DESIGN.md "Reload", steps 3, 6, 7).

Bookkeeping only: the worker processes are the pool's (``supervisor.workers.pool``), and the
reload transaction (``supervisor.reload.transaction``) drives both.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from gateway_worker.config import Config
from gateway_worker.serving.drain import DrainPolicy
from supervisor.config import LoadedConfig
from supervisor.sockets import Listener, bind, same_address
from supervisor.workers.pool import Target
from supervisor.workers.scale import WorkerScale

log = structlog.get_logger("redis_gateway.arbiter")


class CommitEvents(Protocol):
    """What the generations announce (part of ``supervisor.hooks.Hooks``)."""

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        """A new config became current (before the reload's outcome is reported)."""


class ConfigPreparer(Protocol):
    """Turns a loaded config into the one its workers receive
    (``supervisor.worker_setup.WorkerSetup``: embedded Redis URL, control socket)."""

    def prepare(self, config: Config) -> Config: ...


class Generations:
    """The serving generation and the committed (last-known-good) config."""

    def __init__(
        self,
        loaded: LoadedConfig,
        listeners: list[Listener],
        preparer: ConfigPreparer,
        hooks: CommitEvents,
        version: int = 1,
    ) -> None:
        self.current = loaded
        #: Monotonic across restarts when a state directory keeps it (``supervisor.config.store``).
        self.version = version
        #: The number of the generation that serves.
        self.serving = 1
        self.listeners = listeners
        self.scale = WorkerScale(loaded.config.server.workers)
        self._last_number = 1
        self._retired_listeners: list[Listener] = []
        self._preparer = preparer
        self._hooks = hooks
        self._worker_config: Config | None = None

    @property
    def drain_policy(self) -> DrainPolicy:
        """Deadlines of the running config's drains."""
        return DrainPolicy.from_config(self.current.config.server)

    def prepare(self, config: Config) -> Config:
        """The config the workers of a generation running ``config`` receive."""
        return self._preparer.prepare(config)

    def target(self) -> Target:
        """What the serving generation should look like (the pool reconciles to it)."""
        if self._worker_config is None:
            self._worker_config = self.prepare(self.current.config)
        return Target(self.serving, self.scale.desired, self._worker_config, self.listeners)

    def next_number(self) -> int:
        """Never reused, even after a failed reload, so pids group unambiguously."""
        self._last_number += 1
        return self._last_number

    def listeners_for(self, config: Config) -> tuple[list[Listener], Listener | None]:
        """Current listeners, or a newly bound one when the address changed
        (raises ``supervisor.sockets.BindError``)."""
        host, port = config.server.host, config.server.port
        if all(same_address(lst, host, port) for lst in self.listeners):
            if any(lst.from_systemd and lst.port != port for lst in self.listeners):
                log.warning(
                    "reload.address_ignored",
                    reason="socket passed by systemd",
                    configured=f"{host}:{port}",
                    listening=[f"{lst.host}:{lst.port}" for lst in self.listeners],
                )
            return self.listeners, None
        new = bind(host, port)
        return [new], new

    def switch(
        self, number: int, loaded: LoadedConfig, listeners: list[Listener], worker_config: Config
    ) -> None:
        """Generation ``number`` serves from now on (its workers are all ready)."""
        if listeners is not self.listeners:
            self._retired_listeners.extend(self.listeners)
            self.listeners = listeners
        self.serving = number
        self.scale.follow(loaded.config.server.workers)
        self._worker_config = worker_config

    def commit(self, loaded: LoadedConfig, version: int) -> None:
        """``loaded`` is the running config now; the old listening sockets are closed."""
        self.current = loaded
        self.version = version
        for lst in self._retired_listeners:
            lst.close()
        self._retired_listeners.clear()
        self._hooks.committed(loaded, version)
