"""The supervisor's decisions: signals, boot, reloads, stop, and the state it reports.

Shape (gunicorn's arbiter): signal handlers and other threads only *enqueue* (into the
``supervisor.inbox.Inbox``); the main loop (``supervisor.loop``) wakes up and calls
``dispatch()``, which hands each queued signal to ``handle_<signal>`` and queues reload
requests, then ``step()``: it reaps exited workers, checks the boot, advances the reload
transaction (``supervisor.reload.transaction``), starts the next coalesced one, and
``manage_workers()`` has the pool (``supervisor.workers.pool``) reconcile the processes with the
desired state kept by ``supervisor.reload.generations`` (generation, config, worker count).

Exit codes of ``step()`` (and so of ``redis-gateway run``): 0 after a requested stop;
1 when the first generation cannot boot (the worker's error is in ``boot_error``).
"""

from __future__ import annotations

import collections
import enum
import os
import signal
import time
from collections.abc import Callable

import structlog

from supervisor.hooks import Hooks
from supervisor.reload.drift import Drift
from supervisor.reload.generations import Generations
from supervisor.reload.lifecycle import Lifecycle
from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.reload.transaction import Loader, ReloadPhase, ReloadTransaction
from supervisor.sockets import Listener
from supervisor.triggers.inbox import Inbox, ReloadRequest, Waiter
from supervisor.workers.handle import WorkerHandle, WorkerState
from supervisor.workers.pool import Clock, WorkerPool
from supervisor.workers.process import describe_exit

log = structlog.get_logger("redis_gateway.arbiter")

#: The signals the supervisor handles (``handle_<name>``).
SIGNALS = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "CHLD")
STOPPING_REPLY = {"ok": False, "error": "supervisor is stopping"}


class StopMode(enum.StrEnum):
    GRACEFUL = "graceful"  # every worker drains
    FAST = "fast"  # every worker exits at once


class Arbiter:
    """Decides what runs; the generations remember it, the pool makes it so."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        generations: Generations,
        pool: WorkerPool,
        hooks: Hooks,
        inbox: Inbox,
        *,
        loader: Loader,
        clock: Clock = time.monotonic,
    ) -> None:
        self.lifecycle = lifecycle
        self.generations = generations
        self.pool = pool
        self.hooks = hooks
        self.inbox = inbox
        self._loader = loader
        self._clock = clock
        self.booted = False
        self.boot_error: str | None = None
        self.stopping: StopMode | None = None
        self.exit_code: int | None = None
        self.reload: ReloadTransaction | None = None
        self.reload_pending: list[ReloadRequest] = []
        self.waiters: list[Waiter] = []
        self.held_answer: ReloadOutcome | None = None  # for waiters, until answerable()
        self.pending_waiters: list[Waiter] = []
        self.last_reload: ReloadOutcome | None = None
        self.reload_counts: collections.Counter[ReloadResult] = collections.Counter()
        self.started_at = time.time()
        self._boot_deadline = 0.0
        #: Why the last worker of the serving generation crashed (reset once one serves).
        self._last_crash: str | None = None

    @property
    def drift(self) -> Drift:
        return self.lifecycle.drift

    @property
    def version(self) -> int:
        return self.generations.version

    @property
    def generation(self) -> int:
        return self.generations.serving

    @property
    def listeners(self) -> list[Listener]:
        return self.generations.listeners

    # -- dispatch ----------------------------------------------------------------------

    def dispatch(self) -> None:
        """Act on everything queued since the last loop iteration."""
        signals, requests = self.inbox.signals, self.inbox.requests
        while signals:
            self._handler(signals.popleft())()
        while requests:
            request, waiter = requests.popleft()
            if self.stopping:
                if waiter is not None:
                    waiter.reply(STOPPING_REPLY)
                continue
            self.reload_pending.append(request)
            if waiter is not None:
                self.pending_waiters.append(waiter)

    def _handler(self, signum: int) -> Callable[[], None]:
        name = signal.Signals(signum).name[3:].lower()
        handler: Callable[[], None] = getattr(self, f"handle_{name}")
        return handler

    def handle_hup(self) -> None:
        self.inbox.request_reload("SIGHUP")

    def handle_term(self) -> None:
        self.stop(graceful=True)

    def handle_int(self) -> None:
        # A second Ctrl+C while draining means "now" (as uvicorn and gunicorn do).
        self.stop(graceful=self.stopping is None)

    def handle_quit(self) -> None:
        self.stop(graceful=False)

    def handle_ttin(self) -> None:
        self._scale(grow=True)

    def handle_ttou(self) -> None:
        self._scale(grow=False)

    def _scale(self, grow: bool) -> None:
        scale = self.generations.scale
        scale.grow() if grow else scale.shrink()
        log.info("workers.scale", desired=scale.desired, signal="TTIN" if grow else "TTOU")

    def handle_usr1(self) -> None:
        self.hooks.reopen_logs()
        self.pool.signal_all(signal.SIGUSR1)
        log.info("logs.reopened")

    def handle_chld(self) -> None:
        self.reap()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start generation 1."""
        gens = self.generations
        current = gens.current
        log.info(
            "supervisor.starting",
            generation=gens.serving,
            workers=gens.scale.desired,
            version=gens.version,
            hash=current.hash,
            profile=current.config.profile,
            listen=[f"{lst.host}:{lst.port}" for lst in gens.listeners],
        )
        timeout = current.config.server.reload_readiness_timeout_seconds
        self._boot_deadline = self._clock() + timeout
        target = gens.target()
        self.pool.start_generation(
            target.generation, target.workers, target.config, target.listeners
        )

    def stop(self, graceful: bool) -> None:
        if self.stopping is StopMode.FAST or (self.stopping and graceful):
            return
        self.stopping = StopMode.GRACEFUL if graceful else StopMode.FAST
        log.info("supervisor.stopping", mode=str(self.stopping))
        self.hooks.stopping()
        if self.reload is not None:
            outcome = self.reload.abandon()
            if outcome is not None:
                self._report(outcome)
            if self.held_answer is not None:
                self._answer(self.held_answer)
            self.reload = None
        for waiter in self.pending_waiters:
            waiter.reply(STOPPING_REPLY)
        self.pending_waiters.clear()
        self.reload_pending.clear()
        if graceful:
            self.pool.drain(self.pool.workers, self.generations.drain_policy.kill_after_seconds)
        else:
            self.pool.quit_all()

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
            if self.held_answer is not None and self.reload.answerable():
                self._answer(self.held_answer)
            if self.reload.finished:
                # Only now may the next (coalesced) reload start: never two at once.
                self.reload = None
        if self.reload is None and self.reload_pending and self.booted and not self.stopping:
            self._start_reload()
        if self.booted and not self.stopping:
            busy = self.reload is not None or bool(self.reload_pending)
            if self.lifecycle.tick(self.generations.current, busy):
                self._drift_changed()
        self.manage_workers()
        if self.stopping and not any(w.alive for w in self.pool.workers):
            log.info("supervisor.stopped", mode=str(self.stopping))
            return 0
        return None

    def _check_boot(self) -> None:
        first = [w for w in self.pool.workers if w.generation == 1]
        failed = [w for w in first if w.error is not None or not w.alive]
        if failed:
            w = failed[0]
            self.boot_error = f"worker {w.pid}: {w.error or 'exited before it was ready'}"
        elif self.boot_error is not None:
            pass  # set by _on_exit: a first-generation worker already exited
        elif self._clock() >= self._boot_deadline and not all(
            w.state == WorkerState.READY for w in first
        ):
            timeout = self.generations.current.config.server.reload_readiness_timeout_seconds
            self.boot_error = f"workers not ready within {timeout}s"
        elif first and all(w.state == WorkerState.READY for w in first):
            self.booted = True
            log.info(
                "supervisor.ready",
                generation=self.generation,
                worker_pids=[w.pid for w in first],
                version=self.version,
            )
            self.hooks.ready(self.status_line())
            return
        else:
            return
        log.error("supervisor.boot_failed", error=self.boot_error)
        self.pool.kill_all()
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
            self.generations,
            self.pool,
            inputs=self.lifecycle.reload_inputs(),
            loader=self._loader,
            clock=self._clock,
            trigger=",".join(dict.fromkeys(r.trigger for r in requests)),
            expected_fingerprint=requests[-1].fingerprint if automatic else None,
        )
        outcome = self.reload.begin()
        if self.reload.inputs_fingerprint is not None:
            self.hooks.inputs_read(
                self.reload.inputs_fingerprint,
                settled=outcome is None or outcome.result is not ReloadResult.DEFERRED,
            )
        if outcome is not None:
            self._report(outcome)
            self.reload = None

    def _report(self, outcome: ReloadOutcome) -> None:
        self.last_reload = outcome
        self.reload_counts[outcome.result] += 1
        if self.lifecycle.after(outcome, self.generations.current):
            self._drift_changed()
        if self.reload is None or self.reload.answerable():
            self._answer(outcome)
        else:
            self.held_answer = outcome  # until no old worker accepts (see answerable())
        self.hooks.reload_finished(outcome, self.status_line())

    def _answer(self, outcome: ReloadOutcome) -> None:
        for waiter in self.waiters:
            waiter.reply({"ok": outcome.ok, "reload": outcome.as_dict()})
        self.waiters = []
        self.held_answer = None

    def check_drift(self) -> None:
        """Compare the sources with the running config now (``config diff``, status)."""
        if self.lifecycle.check(self.generations.current):
            self._drift_changed()

    def _drift_changed(self) -> None:
        drift = self.lifecycle.drift
        log.info("drift.changed", state=str(drift.state), reasons=drift.reasons)
        self.hooks.drift_changed(str(drift.state))

    def reap(self) -> None:
        for w in self.pool.reap():
            self._on_exit(w)

    def _on_exit(self, w: WorkerHandle) -> None:
        code = w.returncode if w.returncode is not None else 0
        # Drained, SIGKILLed at its deadline or fast-stopped: asked to go, no crash.
        expected = self.stopping is not None or w.stop_requested
        fields = {"worker_pid": w.pid, "generation": w.generation, "exit": describe_exit(code)}
        if not self.booted and not self.stopping and self.boot_error is None:
            self.boot_error = f"worker {w.pid}: {w.error or 'exited before it was ready'}"
        if expected or w.generation != self.generation or not self.booted:
            log.info("worker.exited", **fields)
            return
        self._last_crash = w.error or f"a worker exited with {describe_exit(code)}"
        delay = self.pool.crashed(w, self.generations.current.config)
        log.warning(
            "worker.crashed",
            **fields,
            error=w.error,
            restart_in=round(delay, 2),
            consecutive_crashes=self.pool.backoff.rounds,
        )

    def manage_workers(self) -> None:
        """Make the processes match the desired state; enforce deadlines."""
        config = self.generations.current.config
        self.pool.enforce_deadlines(config, self.generation, self.booted)
        if self.stopping or not self.booted:
            return
        if self.pool.serving(self.generation):
            self._last_crash = None
        target = self.generations.target()
        self.pool.reconcile(target, config)
        starting = self.reload is not None and self.reload.phase is not ReloadPhase.DRAINING
        self.pool.replenish_standby(target.listeners, target.workers, busy=starting)

    def unserved_reason(self) -> str | None:
        """Why no worker of the serving generation is ready, or None when one is. None
        too while booting or stopping: the first generation's boot has its own deadline,
        and a stop ends with the listening socket."""
        if not self.booted or self.stopping or self.pool.serving(self.generation):
            return None
        return self._last_crash or "no worker is ready"

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """What `redis-gateway status --json` shows (keys are only ever added)."""
        gens = self.generations
        cfg = gens.current.config
        return {
            "pid": os.getpid(),
            "generation": gens.serving,
            "version": gens.version,
            "hash": gens.current.hash,
            "profile": cfg.profile,
            # Which layer set each key (names of files/env vars, never values).
            "provenance": gens.current.provenance,
            "desired_workers": gens.scale.desired,
            "desired_workers_source": gens.scale.source,
            "listen": [f"{lst.host}:{lst.port}" for lst in gens.listeners],
            "workers": [w.describe() for w in self.pool.workers],
            "standby_workers": self.pool.standby_count,
            "reload_in_progress": self.reload is not None,
            "reloads": {str(result): n for result, n in self.reload_counts.items()},
            "last_reload": self.last_reload.as_dict() if self.last_reload else None,
            "drift": self.drift.as_dict(),
            "restored": self.lifecycle.pinned,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "stopping": None if self.stopping is None else str(self.stopping),
            # Set while no worker serves (clients get the supervisor's 503 then).
            "unserved": self.unserved_reason(),
        }

    def status_line(self) -> str:
        serving = sum(
            1
            for w in self.pool.workers
            if w.state == WorkerState.READY and w.generation == self.generation
        )
        return (
            f"serving: generation {self.generation}, {serving} workers, "
            f"config v{self.version} ({self.generations.current.hash})"
        )
