"""The supervisor's main loop: signals, workers, generations, reloads, control socket.

Shape (gunicorn's arbiter): signal handlers and other threads only *enqueue*; one
loop wakes up (self-pipe), dispatches what was queued to ``handle_<signal>``, reads
worker status pipes and the control socket, then ``step()`` advances the reload
transaction and ``manage_workers()`` reconciles reality with the desired state
(generation number, worker count, kill deadlines, heartbeats, crash backoff).

Exit codes of ``run()``: 0 after a requested stop; 1 when the first generation
cannot boot (the worker's error is logged and returned in ``boot_error``).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import structlog

from gateway_worker.config import Config
from supervisor.config import ConfigInputs, LoadedConfig, load_config
from supervisor.control import ControlConnection
from supervisor.drift import Drift
from supervisor.generations import Generations
from supervisor.reload import ReloadOutcome, ReloadRequest, ReloadTransaction
from supervisor.sockets import Listener
from supervisor.worker_process import WorkerProcess, WorkerState, describe_exit

log = structlog.get_logger("redis_gateway.arbiter")

SIGNALS = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "CHLD")
#: First delay of the crashed-worker restart backoff (doubles up to the configured cap).
BACKOFF_BASE_SECONDS = 0.5

WorkerFactory = Callable[[int, int, int, Config, list[Listener]], Any]


class Hooks:
    """Side effects of lifecycle events (systemd, metrics, watcher, logging); no-ops here."""

    def ready(self, status: str) -> None:
        """The first generation is serving."""

    def reloading(self) -> None:
        """A reload transaction starts."""

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        """The reload read inputs with this fingerprint; not ``settled``: they were not
        the bytes the watcher saw settle, so the watcher must look again."""

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        """A reload ended (any result)."""

    def committed(self, loaded: LoadedConfig) -> None:
        """A new config became current (before ``reload_finished``)."""

    def stopping(self) -> None:
        """A stop was requested."""

    def worker_exited(self, pid: int) -> None:
        """A worker process is gone (clean up its per-process metrics)."""

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen log files."""


class Arbiter(Generations):
    """Owns the listeners, the workers and the running configuration."""

    def __init__(
        self,
        inputs: ConfigInputs,
        loaded: LoadedConfig,
        listeners: list[Listener],
        *,
        prepare_config: Callable[[Config], Config] = lambda c: c,
        worker_factory: WorkerFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        hooks: Hooks | None = None,
        loader: Callable[[ConfigInputs], LoadedConfig] = load_config,
    ) -> None:
        self.inputs = inputs
        self.current = loaded  # committed config (last-known-good)
        self.version = 1
        self.generation = 1
        self._last_generation = 1
        self.listeners = listeners
        self.prepare_config = prepare_config
        self.worker_config = prepare_config(loaded.config)
        self.desired_workers = loaded.config.server.workers
        self.workers: list[Any] = []
        self._factory = worker_factory or spawn_worker
        self._clock = clock
        self.hooks = hooks or Hooks()
        self.loader = loader
        self.booted = False
        self.boot_error: str | None = None
        self.stopping: str | None = None  # None | "graceful" | "fast"
        self.exit_code: int | None = None
        self.reload: ReloadTransaction | None = None
        self.reload_pending: list[ReloadRequest] = []
        self.waiters: list[ControlConnection] = []
        self.pending_waiters: list[ControlConnection] = []
        self.last_reload: ReloadOutcome | None = None
        self.reload_counts: collections.Counter[str] = collections.Counter()
        self.started_at = time.time()
        self._boot_deadline = clock() + loaded.config.server.reload_readiness_timeout_seconds
        self._crashes = 0
        self._slot_restarts: collections.Counter[tuple[int, int]] = collections.Counter()
        self._next_spawn_at = 0.0
        self._old_listeners: list[Listener] = []
        self.signal_queue: collections.deque[int] = collections.deque()
        self.request_queue: collections.deque[tuple[ReloadRequest, Any]] = collections.deque()
        self.drift = Drift()

    def clock(self) -> float:
        return self._clock()

    # -- enqueue-only entry points (signal handlers, other threads) ------------------

    def enqueue_signal(self, signum: int) -> None:
        self.signal_queue.append(signum)

    def request_reload(self, trigger: str, waiter: ControlConnection | None = None,
                       fingerprint: str | None = None) -> None:
        """Ask for a reload; coalesced with others pending. Main-loop or thread safe.

        ``fingerprint`` marks the file watcher's request (the inputs it saw settle)."""
        self.request_queue.append((ReloadRequest(trigger, fingerprint), waiter))

    # -- dispatch ----------------------------------------------------------------------

    def dispatch(self) -> None:
        """Act on everything queued since the last loop iteration."""
        while self.signal_queue:
            signum = self.signal_queue.popleft()
            name = signal.Signals(signum).name[3:].lower()
            getattr(self, f"handle_{name}")()
        while self.request_queue:
            request, waiter = self.request_queue.popleft()
            if self.stopping:
                if waiter is not None:
                    waiter.reply({"ok": False, "error": "supervisor is stopping"})
                continue
            self.reload_pending.append(request)
            if waiter is not None:
                self.pending_waiters.append(waiter)

    def handle_hup(self) -> None:
        self.request_reload("SIGHUP")

    def handle_term(self) -> None:
        self.stop(graceful=True)

    def handle_int(self) -> None:
        # A second Ctrl+C while draining means "now" (as uvicorn and gunicorn do).
        self.stop(graceful=self.stopping is None)

    def handle_quit(self) -> None:
        self.stop(graceful=False)

    def handle_ttin(self) -> None:
        self.desired_workers += 1
        log.info("workers.scale", desired=self.desired_workers, signal="TTIN")

    def handle_ttou(self) -> None:
        if self.desired_workers > 1:
            self.desired_workers -= 1
        log.info("workers.scale", desired=self.desired_workers, signal="TTOU")

    def handle_usr1(self) -> None:
        self.hooks.reopen_logs()
        for w in self.workers:
            w.signal(signal.SIGUSR1)
        log.info("logs.reopened")

    def handle_chld(self) -> None:
        self.reap()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start generation 1."""
        log.info("supervisor.starting", generation=self.generation,
                 workers=self.desired_workers, version=self.version, hash=self.current.hash,
                 profile=self.current.config.profile,
                 listen=[f"{lst.host}:{lst.port}" for lst in self.listeners])
        self.workers = self.start_generation(self.generation, self.current.config, self.listeners)

    def stop(self, graceful: bool) -> None:
        if self.stopping == "fast" or (self.stopping and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        log.info("supervisor.stopping", mode=self.stopping)
        self.hooks.stopping()
        if self.reload is not None:
            outcome = self.reload.abandon()
            if outcome is not None:
                self._report(outcome)
            self.reload = None
        for waiter in self.pending_waiters:
            waiter.reply({"ok": False, "error": "supervisor is stopping"})
        self.pending_waiters.clear()
        self.reload_pending.clear()
        timeout = self.current.config.server.graceful_shutdown_timeout_seconds
        for w in self.workers:
            if graceful:
                w.drain(timeout)
            else:
                w.signal(signal.SIGQUIT)
                w.state = WorkerState.DRAINING
                w.kill_deadline = self.clock() + 2.0

    # -- the loop ------------------------------------------------------------------------

    def step(self) -> int | None:
        """Advance reload and reconcile; returns an exit code when the loop must end."""
        self.reap()
        if not self.booted and not self.stopping:
            self._check_boot()
        if self.exit_code is not None:
            return self.exit_code
        if self.reload is not None:
            outcome = self.reload.step()
            if outcome is not None:
                self._report(outcome)
            if self.reload.finished:
                # Only now may the next (coalesced) reload start: never two at once.
                self.reload = None
        if self.reload is None and self.reload_pending and self.booted and not self.stopping:
            self._start_reload()
        self.manage_workers()
        if self.stopping and not any(w.alive for w in self.workers):
            log.info("supervisor.stopped", mode=self.stopping)
            return 0
        return None

    def _check_boot(self) -> None:
        first = [w for w in self.workers if w.generation == 1]
        failed = [w for w in first if w.error is not None or not w.alive]
        if failed:
            w = failed[0]
            self.boot_error = f"worker {w.pid}: {w.error or 'exited before it was ready'}"
        elif self.boot_error is not None:
            pass  # set by _on_exit: a first-generation worker already exited
        elif self.clock() >= self._boot_deadline and not all(w.state == "ready" for w in first):
            timeout = self.current.config.server.reload_readiness_timeout_seconds
            self.boot_error = f"workers not ready within {timeout}s"
        elif first and all(w.state == "ready" for w in first):
            self.booted = True
            log.info("supervisor.ready", generation=self.generation,
                     pids=[w.pid for w in first], version=self.version)
            self.hooks.ready(self.status_line())
            return
        else:
            return
        log.error("supervisor.boot_failed", error=self.boot_error)
        for w in self.workers:
            w.kill()
        self.exit_code = 1

    def _start_reload(self) -> None:
        requests = self.reload_pending
        self.reload_pending = []
        self.waiters, self.pending_waiters = self.pending_waiters, []
        self.hooks.reloading()
        # Only a reload nobody but the watcher asked for checks what it read against
        # what settled, and holds unsafe changes; an explicit one applies them.
        automatic = all(r.automatic for r in requests)
        self.reload = ReloadTransaction(
            self, trigger=",".join(dict.fromkeys(r.trigger for r in requests)),
            loader=self.loader,
            expected_fingerprint=requests[-1].fingerprint if automatic else None)
        outcome = self.reload.begin()
        if self.reload.inputs_fingerprint is not None:
            self.hooks.inputs_read(self.reload.inputs_fingerprint,
                                   settled=outcome is None or outcome.result != "deferred")
        if outcome is not None:
            self._report(outcome)
            self.reload = None

    def _report(self, outcome: ReloadOutcome) -> None:
        self.last_reload = outcome
        self.reload_counts[outcome.result] += 1
        self.drift.follow(outcome)
        for waiter in self.waiters:
            waiter.reply({"ok": outcome.ok, "reload": outcome.as_dict()})
        self.waiters = []
        self.hooks.reload_finished(outcome, self.status_line())

    def reap(self) -> None:
        for w in self.workers:
            if w.poll():
                self._on_exit(w)
        self.workers = [w for w in self.workers if w.alive]

    def _on_exit(self, w: Any) -> None:
        code = w.returncode if w.returncode is not None else 0
        expected = w.state == WorkerState.DRAINING or self.stopping or w.kill_deadline
        fields = {"pid": w.pid, "generation": w.generation, "exit": describe_exit(code)}
        self.hooks.worker_exited(w.pid)
        w.close()
        if not self.booted and not self.stopping and self.boot_error is None:
            self.boot_error = f"worker {w.pid}: {w.error or 'exited before it was ready'}"
        if expected or w.generation != self.generation or not self.booted:
            log.info("worker.exited", **fields)
            return
        self._crashes += 1
        self._slot_restarts[(w.generation, w.slot)] += 1
        cap = self.current.config.supervisor.restart_backoff_max_seconds
        delay = min(cap, BACKOFF_BASE_SECONDS * 2 ** (self._crashes - 1))
        self._next_spawn_at = self.clock() + delay
        log.warning("worker.crashed", **fields, error=w.error, restart_in=round(delay, 2),
                    consecutive_crashes=self._crashes)

    def manage_workers(self) -> None:
        """Make the current generation match the desired state; enforce deadlines."""
        now = self.clock()
        cfg = self.current.config
        for w in self.workers:
            if w.kill_deadline is not None and now >= w.kill_deadline and w.alive:
                log.warning("worker.killed", pid=w.pid, generation=w.generation,
                            reason="deadline passed")
                w.kill()
            elif w.state == WorkerState.READY and (
                now - w.last_heartbeat > cfg.supervisor.heartbeat_timeout_seconds
            ):
                log.warning("worker.heartbeat_missed", pid=w.pid,
                            silent_seconds=round(now - w.last_heartbeat, 1))
                w.drain(min(cfg.server.graceful_shutdown_timeout_seconds,
                            cfg.supervisor.heartbeat_timeout_seconds))
            elif (self.booted and w.state == WorkerState.STARTING
                  and w.generation == self.generation
                  and now - w.started_at > cfg.server.reload_readiness_timeout_seconds):
                # A replacement that never became ready (reload workers have their own
                # deadline in the transaction, and belong to generation + 1).
                log.warning("worker.start_timeout", pid=w.pid)
                w.drain(1.0)
        if self.stopping or not self.booted:
            return
        current = [w for w in self.workers if w.generation == self.generation
                   and w.state in (WorkerState.STARTING, WorkerState.READY)]
        if self._crashes and any(
            w.state == WorkerState.READY and now - w.started_at >= cfg.supervisor
            .restart_backoff_max_seconds for w in current
        ):
            self._crashes = 0  # healthy long enough: the next crash starts over
        if len(current) < self.desired_workers and now >= self._next_spawn_at:
            used = {w.slot for w in current}
            for slot in range(self.desired_workers):
                if len(current) >= self.desired_workers:
                    break
                if slot in used:
                    continue
                restarts = self._slot_restarts[(self.generation, slot)]
                try:
                    w = self._factory(self.generation, slot, restarts, self.worker_config,
                                      self.listeners)
                except OSError as exc:  # fork/exec failed: retry later, never crash
                    log.error("worker.spawn_failed", error=str(exc), slot=slot)  # noqa: TRY400 - expected condition
                    self._next_spawn_at = now + BACKOFF_BASE_SECONDS
                    break
                self.workers.append(w)
                current.append(w)
                log.info("worker.spawned", pid=w.pid, generation=self.generation, slot=slot)
        elif len(current) > self.desired_workers:
            extra = sorted(current, key=lambda w: w.slot)[self.desired_workers:]
            for w in extra:
                w.drain(cfg.server.graceful_shutdown_timeout_seconds)

    def run(self, wake_fd: int, extra_fds: Callable[[], dict[int, Callable[[int], None]]],
            tick: Callable[[], None] | None = None) -> int:
        """Main loop until stop; ``wake_fd`` is the self-pipe's read end."""
        self.start()
        while True:
            fds: dict[int, Callable[[int], None]] = {wake_fd: _drain_pipe}
            for w in self.workers:
                if w.status_fd is not None:
                    fds[w.status_fd] = _reader(w)
            fds.update(extra_fds())
            try:
                readable, _, _ = select.select(list(fds), [], [], 0.2)
            except InterruptedError:
                readable = []
            for fd in readable:
                fds[fd](fd)
            self.dispatch()
            if tick is not None:
                tick()
            code = self.step()
            if code is not None:
                return code

def _reader(worker: Any) -> Callable[[int], None]:
    def read(_fd: int) -> None:
        worker.read_status()

    return read


def _drain_pipe(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def spawn_worker(generation: int, slot: int, restarts: int, config: Config,
                 listeners: list[Listener]) -> WorkerProcess:
    """Default factory: a real worker process."""
    w = WorkerProcess(generation, slot, restarts)
    env = dict(os.environ)
    w.spawn(config, [lst.fd for lst in listeners], env)
    return w
