"""Wires the supervisor once: every object receives its collaborators here.

::

    Supervisor ── MainLoop ── select ──► Inbox (signals, reload requests, self-pipe)
                     │                   ControlServer ─► ControlCommands
                     ▼
                  Arbiter ── decides ──► Generations (config, version, listeners, scale)
                     │                   ReloadTransaction(generations, pool, loader, clock)
                     ▼
                  WorkerPool ─ spawns ─► ProcessFactory ─► StandbyWorkers, WorkerProcess
                     │
                  Hooks = FanOut(LogService, EmbeddedRedisService, WatcherService,
                                 MetricsService, SystemdService, StateService,
                                 MemoryTrim, ExposureWarning)

``assemble`` builds the core (inbox, pool, generations, arbiter) from its edges (worker
factory, hooks, config preparer, loader, clock): the unit tests pass fakes for those.
``build`` creates the real edges and resources (sockets, embedded Redis, control socket,
metrics endpoint, watcher) in start-up order and returns a ``Supervisor`` that tears
them down in reverse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from gateway_worker.config import Config, config_hash
from supervisor import runtime_files
from supervisor.arbiter import Arbiter
from supervisor.config import ConfigInputs, LoadedConfig, load_config
from supervisor.config.state_paths import state_dir_of
from supervisor.config.store import StateStore
from supervisor.embedded_redis import EmbeddedRedisError
from supervisor.hooks import FanOut, Hooks, Listeners
from supervisor.loop import MainLoop
from supervisor.reload.generations import ConfigPreparer, Generations
from supervisor.reload.lifecycle import Lifecycle, Resumed
from supervisor.reload.transaction import Loader
from supervisor.services import ServiceError
from supervisor.services.embedded_redis import EmbeddedRedisService
from supervisor.services.exposure import ExposureWarning
from supervisor.services.logs import LogService
from supervisor.services.memory import MemoryTrim
from supervisor.services.metrics import MetricsService
from supervisor.services.state import StateService
from supervisor.services.systemd import SystemdService
from supervisor.services.watcher import WatcherService
from supervisor.sockets import BindError, Listener, bind, from_systemd
from supervisor.systemd import Notifier, listen_fds
from supervisor.triggers.control import (
    ControlCommands,
    ControlError,
    ControlServer,
    SupervisorIdentity,
    default_socket_path,
)
from supervisor.triggers.inbox import Inbox
from supervisor.unserved import UnservedResponder
from supervisor.workers.handle import WorkerFactory
from supervisor.workers.pool import Clock, Standby, WorkerPool
from supervisor.workers.setup import WorkerSetup, wants_embedded_redis
from supervisor.workers.standby import ProcessFactory, StandbyWorkers

log = structlog.get_logger("redis_gateway.supervisor")


class StartupError(Exception):
    """The supervisor cannot start; the message is printed and `run` exits 1."""


@dataclass(frozen=True)
class Core:
    """The objects that decide and track; no I/O of their own beyond the inbox's pipe."""

    inbox: Inbox
    pool: WorkerPool
    generations: Generations
    arbiter: Arbiter


def assemble(
    inputs: ConfigInputs,
    loaded: LoadedConfig,
    listeners: list[Listener],
    *,
    factory: WorkerFactory,
    hooks: Hooks,
    preparer: ConfigPreparer,
    loader: Loader = load_config,
    clock: Clock = time.monotonic,
    standby: Standby | None = None,
    inbox: Inbox | None = None,
    lifecycle: Lifecycle | None = None,
    version: int = 1,
) -> Core:
    """The core of a supervisor serving ``loaded`` on ``listeners``."""
    inbox = inbox or Inbox()
    lifecycle = lifecycle or Lifecycle(inputs, loaded, loader, None, clock=clock)
    pool = WorkerPool(factory, hooks, clock, standby)
    generations = Generations(loaded, listeners, preparer, hooks, version)
    arbiter = Arbiter(lifecycle, generations, pool, hooks, inbox, loader=loader, clock=clock)
    return Core(inbox, pool, generations, arbiter)


@dataclass(frozen=True)
class StateSetup:
    """The state directory (or None when it cannot be used) and the fingerprint key;
    the running config hashed with it, its version, and the loader the reloads use."""

    store: StateStore | None
    key: bytes
    loaded: LoadedConfig
    version: int
    loader: Loader


def open_state(loaded: LoadedConfig, env: Mapping[str, str]) -> StateSetup:
    """Open (create) the state directory; without one the supervisor still runs, with a
    key of its own (secret rotations are still seen) and no backups or history."""
    config = loaded.config
    store: StateStore | None = StateStore(
        state_dir_of(config, dict(env)), config.supervisor.backups_keep
    )
    assert store is not None
    key: bytes | None = None
    try:
        store.ensure()
        key = store.fingerprint_key()
    except OSError as exc:
        log.warning(
            "state.unavailable",
            directory=str(store.directory),
            error=exc.strerror or str(exc),
            effect="no backups, history or versions kept across restarts",
        )
        store = None
    key = key or secrets.token_bytes(32)
    # The hash keys secrets with this key from now on (also the reloads').
    loaded = dataclasses.replace(loaded, hash=config_hash(config, key))
    version = store.next_version(loaded.hash) if store is not None else 1
    loader = functools.partial(load_config, fingerprint_key=key)
    return StateSetup(store, key, loaded, version, loader)


class Supervisor:
    """A built supervisor: ``run()`` until stopped, then ``close()``."""

    def __init__(self, core: Core, loop: MainLoop, resources: contextlib.ExitStack) -> None:
        self.core = core
        self._loop = loop
        self._resources = resources

    @property
    def boot_error(self) -> str | None:
        return self.core.arbiter.boot_error

    def run(self) -> int:
        return self._loop.run()

    def close(self) -> None:
        self._resources.close()


def _listeners(config: Config, stack: contextlib.ExitStack) -> list[Listener]:
    """The listening sockets (systemd's, or bound now), closed with ``stack``."""
    passed = listen_fds()
    try:
        listeners = (
            from_systemd(passed) if passed else [bind(config.server.host, config.server.port)]
        )
    except BindError as exc:
        raise StartupError(str(exc)) from exc
    for lst in listeners:
        stack.callback(lst.close)
    return listeners


def _start_services(config: Config, metrics: MetricsService, watcher: WatcherService) -> None:
    try:
        metrics.start()
    except ServiceError as exc:
        raise StartupError(str(exc)) from exc
    if config.supervisor.watch_config:
        watcher.start(config)


def _clean_leftovers() -> None:
    """What supervisors that died without a teardown (SIGKILL) left behind."""
    removed = runtime_files.clean_dead()
    if removed:
        log.info("supervisor.leftovers_removed", paths=removed)


def _control_server(
    inputs: ConfigInputs,
    path: str,
    core: Core,
    recorder: StateService,
    stack: contextlib.ExitStack,
    *,
    setup: WorkerSetup,
) -> ControlServer:
    """The control socket, and the run file that lets `reload -c FILE` find it."""
    identity = SupervisorIdentity(
        os.getpid(), runtime_files.absolute_config_path(inputs.main_path), path
    )
    try:
        commands = ControlCommands(
            core.arbiter, core.inbox, identity, core.generations, recorder, embedded=setup
        )
        control = ControlServer(path, commands, identity)
    except ControlError as exc:
        raise StartupError(str(exc)) from exc
    stack.callback(control.close)
    _write_run_file(identity, stack)
    return control


def _write_run_file(identity: SupervisorIdentity, stack: contextlib.ExitStack) -> None:
    """How `reload|status -c FILE` find us (``supervisor.runtime_files``); without it
    they need --control-socket, so a failure is only a warning."""
    run = runtime_files.RunFile(
        identity.pid, identity.config_path, identity.control_socket, time.time()
    )
    try:
        run.write()
    except OSError as exc:
        log.warning("supervisor.run_file_failed", path=str(run.path), error=str(exc))
        return
    stack.callback(run.remove)


def _listeners_of(
    *,
    logs: LogService,
    embedded: EmbeddedRedisService,
    watcher: WatcherService,
    metrics: MetricsService,
    systemd: SystemdService,
    recorder: StateService,
    exposure: ExposureWarning,
) -> Listeners:
    """Who hears which lifecycle event, in order: logging is reconfigured first (the
    others then log under the new config); memory is trimmed last, after systemd heard
    the outcome (trimming must not delay READY)."""
    memory = MemoryTrim()
    return Listeners(
        ready=[systemd, recorder, memory],
        reloading=[systemd],
        inputs_read=[watcher],
        committed=[logs, embedded, watcher, metrics, recorder, exposure],
        reload_finished=[metrics, systemd, recorder, memory],
        stopping=[systemd],
        worker_exited=[metrics],
        worker_restarted=[metrics],
        reopen_logs=[logs],
        drift_changed=[metrics],
        tick=[embedded, metrics, systemd],
    )


def _worker_setup(config: Config, control_path: str) -> WorkerSetup:
    """What workers receive besides their sockets; the embedded Redis started if needed."""
    setup = WorkerSetup(control_path)
    if wants_embedded_redis(config):
        try:
            setup.start_embedded_redis()
        except EmbeddedRedisError as exc:
            setup.close()
            raise StartupError(f"embedded Redis: {exc}") from exc
    return setup


def build(inputs: ConfigInputs, loaded: LoadedConfig, resumed: Resumed | None = None) -> Supervisor:
    """Everything `redis-gateway run` needs, started; StartupError names what failed.

    ``resumed``: ``loaded`` is the last good config, not the sources
    (``run --resume-last-good``)."""
    config = loaded.config
    _clean_leftovers()
    state = open_state(loaded, inputs.env)
    loaded, version, loader = state.loaded, state.version, state.loader
    lifecycle = Lifecycle(inputs, loaded, loader, state.store, resumed=resumed)
    with contextlib.ExitStack() as stack:
        inbox = Inbox()
        stack.callback(inbox.close)
        systemd = SystemdService(Notifier.from_env())
        stack.callback(systemd.close)
        listeners = _listeners(config, stack)
        control_path = config.supervisor.control_socket or default_socket_path(config.server.port)
        setup = _worker_setup(config, control_path)
        stack.callback(setup.close)
        watcher = WatcherService(inputs, loaded, inbox)
        recorder = StateService(state.store, inputs, loaded, version)
        metrics = MetricsService(setup, loaded, version, state_ok=lambda: recorder.ok)
        exposure = ExposureWarning(listeners)
        exposure.check(config)
        embedded = EmbeddedRedisService(setup, loaded)
        hooks = FanOut(
            _listeners_of(
                logs=LogService(),
                embedded=embedded,
                watcher=watcher,
                metrics=metrics,
                systemd=systemd,
                recorder=recorder,
                exposure=exposure,
            )
        )
        standby = StandbyWorkers(setup, hooks)
        core = assemble(
            inputs,
            loaded,
            listeners,
            factory=ProcessFactory(setup, standby),
            hooks=hooks,
            preparer=setup,
            standby=standby,
            inbox=inbox,
            loader=loader,
            lifecycle=lifecycle,
            version=version,
        )
        control = _control_server(inputs, control_path, core, recorder, stack, setup=setup)
        stack.callback(core.pool.close)
        stack.callback(metrics.close)
        stack.callback(watcher.close)  # also when a reload turns the watcher on
        _start_services(config, metrics, watcher)
        unserved = UnservedResponder()
        stack.callback(unserved.close)
        loop = MainLoop(core.arbiter, core.pool, inbox, control, hooks, unserved=unserved)
        return Supervisor(core, loop, stack.pop_all())
