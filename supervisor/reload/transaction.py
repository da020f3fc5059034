"""The reload transaction (DESIGN.md "Reload"), one step at a time.

    validate ─► diff ─► [bind new address] ─► start generation N+1 (parallel)
        │         │            │                      │
     invalid   unchanged   bind_failed     all ready before the deadline?
                                              │ no ─► stop N+1, keep N: readiness_failed
                                              ▼ yes
                               commit, then drain N (parallel, SIGKILL on deadline);
                               answered once no worker of N accepts connections

Nothing before "drain N" touches the serving generation, so any failure leaves the
old generation and the old config serving. The transaction never blocks: the
arbiter's main loop calls ``step()`` until it returns an outcome, so signals, status
requests and heartbeats keep being handled during a reload. It receives what it
works on: the generations (config, numbering, listeners), the worker pool (the
processes), the config loader and the clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

import structlog

from gateway_worker.config import Config, dump_redacted, dump_with_secrets
from supervisor.config import ConfigError, ConfigInputs, LoadedConfig
from supervisor.embedded_redis import EmbeddedRedisError
from supervisor.reload.generations import Generations
from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.reload.watch_policy import held_reasons
from supervisor.sockets import BindError, Listener
from supervisor.workers.handle import WorkerHandle, WorkerState
from supervisor.workers.pool import Clock, WorkerPool

__all__ = [
    "ReloadOutcome",
    "ReloadPhase",
    "ReloadResult",
    "ReloadTransaction",
    "config_diff",
    "redacted_values",
]

log = structlog.get_logger("redis_gateway.reload")

Loader = Callable[[ConfigInputs], LoadedConfig]

#: Longest a committed reload's answer waits for the old workers to say they stopped
#: accepting (they do within ~0.1 s of SIGTERM; a wedged one is answered for anyway).
ACCEPT_STOP_WAIT_SECONDS = 2.0


class ReloadPhase(enum.StrEnum):
    """Where a transaction is; only ``STARTING`` and ``DRAINING`` have work left."""

    NEW = "new"
    STARTING = "starting"  # generation N+1 started, waiting until every worker is ready
    DRAINING = "draining"  # committed; generation N drains
    DONE = "done"


def config_diff(old: Config, new: Config) -> list[str]:
    """Dotted key paths whose value changed (secrets compared, never shown)."""
    changed: list[str] = []

    def walk(a: object, b: object, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            changed.append(path)

    walk(dump_with_secrets(old), dump_with_secrets(new), "")
    return changed


def redacted_values(config: Config, paths: list[str]) -> dict[str, object]:
    """The new values at ``paths``, with secrets masked (for the commit log)."""
    data = dump_redacted(config)
    result: dict[str, object] = {}
    for path in paths:
        node: object = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        result[path] = node
    return result


class ReloadTransaction:
    """One reload; call ``begin()`` once, then ``step()`` until it returns an outcome."""

    def __init__(
        self,
        generations: Generations,
        pool: WorkerPool,
        *,
        inputs: ConfigInputs,
        loader: Loader,
        clock: Clock,
        trigger: str,
        expected_fingerprint: str | None = None,
    ) -> None:
        self._generations = generations
        self._pool = pool
        self._inputs = inputs
        self._loader = loader
        self._clock = clock
        self.trigger = trigger
        #: Set for a watcher-only reload: it must read what the watcher saw settle,
        #: and it may not apply a change supervisor.reload.watch_policy holds.
        self.expected_fingerprint = expected_fingerprint
        #: The fingerprint of the inputs this reload read (None until it read them).
        self.inputs_fingerprint: str | None = None
        self.started = clock()
        self.phase = ReloadPhase.NEW
        self.loaded: LoadedConfig | None = None
        self.worker_config: Config | None = None
        self.new_workers: list[WorkerHandle] = []
        self.old_workers: list[WorkerHandle] = []
        self.new_listener: Listener | None = None
        self.listeners: list[Listener] = []
        self.deadline = 0.0
        self.ready_seconds: float | None = None
        self.changed: list[str] = []
        self.generation = 0
        #: When it committed (``answerable()`` waits from then), None once answered.
        self._committed_at: float | None = None

    def _outcome(
        self,
        result: ReloadResult,
        *,
        error: str | None = None,
        errors: list[str] | None = None,
        reasons: list[str] | None = None,
        changed: list[str] | None = None,
    ) -> ReloadOutcome:
        gens = self._generations
        outcome = ReloadOutcome(
            result=result,
            trigger=self.trigger,
            version=gens.version,
            hash=gens.current.hash,
            error=error,
            errors=errors or [],
            reasons=reasons or [],
            changed=changed or [],
            duration_seconds=self._clock() - self.started,
        )
        if outcome.failed:
            log.error(
                "reload.failed",
                result=str(result),
                trigger=self.trigger,
                error=outcome.error,
                errors=outcome.errors,
                version=gens.version,
            )
        elif result is ReloadResult.HELD:
            log.warning(
                "reload.held",
                trigger=self.trigger,
                reasons=outcome.reasons,
                changed=outcome.changed,
                version=gens.version,
                apply_with="SIGHUP or `redis-gateway reload`",
            )
        elif result is ReloadResult.DEFERRED:
            log.info("reload.deferred", trigger=self.trigger, reason=outcome.error)
        elif result is ReloadResult.UNCHANGED:
            log.info("reload.unchanged", trigger=self.trigger, version=gens.version)
        return outcome

    def _read_unsettled(self, fingerprint: str | None) -> ReloadOutcome | None:
        """A watcher reload that read other bytes than those that settled: deferred."""
        self.inputs_fingerprint = fingerprint
        if self.expected_fingerprint is None or fingerprint == self.expected_fingerprint:
            return None
        return self._outcome(
            ReloadResult.DEFERRED,
            error=(
                "the inputs changed after they settled (a write in progress); "
                "retried once they settle again"
            ),
        )

    @property
    def finished(self) -> bool:
        """True once nothing of this reload is left (old generation gone, or failed)."""
        return self.phase in (ReloadPhase.NEW, ReloadPhase.DONE) or (
            self.phase is ReloadPhase.DRAINING and not any(w.alive for w in self.old_workers)
        )

    def begin(self) -> ReloadOutcome | None:
        """Load, validate, diff; start generation N+1. An outcome when it ends here."""
        gens = self._generations
        log.info("reload.started", trigger=self.trigger, version=gens.version)
        self.phase = ReloadPhase.DONE  # until generation N+1 is started below
        loaded_or_outcome = self._load()
        if isinstance(loaded_or_outcome, ReloadOutcome):
            return loaded_or_outcome
        loaded = loaded_or_outcome
        if loaded.hash == gens.current.hash:
            return self._outcome(ReloadResult.UNCHANGED)
        self.loaded = loaded
        self.changed = config_diff(gens.current.config, loaded.config)
        if self.expected_fingerprint is not None:
            reasons = held_reasons(gens.current.config, loaded.config)
            if reasons:
                return self._outcome(ReloadResult.HELD, reasons=reasons, changed=self.changed)
        try:
            self.listeners, self.new_listener = gens.listeners_for(loaded.config)
        except BindError as exc:
            return self._outcome(ReloadResult.BIND_FAILED, error=str(exc))
        self.generation = gens.next_number()
        try:
            self.worker_config = gens.prepare(loaded.config)
            self.new_workers = self._pool.start_generation(
                self.generation,
                gens.scale.count_for(loaded.config.server.workers),
                self.worker_config,
                self.listeners,
            )
        except (OSError, EmbeddedRedisError) as exc:  # fork/exec failed (EAGAIN, ENOMEM...)
            self._close_new_listener()
            return self._outcome(ReloadResult.ERROR, error=f"cannot start workers: {exc}")
        self.deadline = self.started + loaded.config.server.reload_readiness_timeout_seconds
        self.phase = ReloadPhase.STARTING
        return None

    def _load(self) -> LoadedConfig | ReloadOutcome:
        try:
            loaded = self._loader(self._inputs)
        except ConfigError as exc:
            return self._read_unsettled(exc.inputs_fingerprint) or self._outcome(
                ReloadResult.INVALID,
                errors=list(exc.problems),
                error=f"invalid configuration ({len(exc.problems)} problem(s))",
            )
        except Exception as exc:  # a loader bug must not take the supervisor down
            log.exception("reload.loader_crashed")
            return self._outcome(ReloadResult.ERROR, error=f"loading the config failed: {exc!r}")
        return self._read_unsettled(loaded.inputs_fingerprint) or loaded

    def step(self) -> ReloadOutcome | None:
        """Advance; returns the outcome once, when it becomes known."""
        if self.phase is ReloadPhase.STARTING:
            return self._step_starting()
        if self.phase is ReloadPhase.DRAINING and not any(w.alive for w in self.old_workers):
            self.phase = ReloadPhase.DONE
            log.info(
                "reload.drained",
                generation=self.generation,
                seconds=round(self._clock() - self.started, 3),
            )
        return None

    def answerable(self) -> bool:
        """Whoever asked for this reload may have its answer: it failed, or it committed
        and no old worker accepts connections any more (each said so, or exited), so a
        connection made after the answer reaches generation N+1. A worker that has not
        said so ACCEPT_STOP_WAIT_SECONDS after the commit is logged and not waited for."""
        if self.phase is not ReloadPhase.DRAINING or self._committed_at is None:
            return True
        waiting = [w.pid for w in self.old_workers if w.alive and not w.stopped_accepting]
        if not waiting:
            return True
        if self._clock() - self._committed_at < ACCEPT_STOP_WAIT_SECONDS:
            return False
        log.warning(
            "reload.old_workers_still_accepting",
            worker_pids=waiting,
            waited_seconds=ACCEPT_STOP_WAIT_SECONDS,
        )
        self._committed_at = None  # answered: said once
        return True

    def _step_starting(self) -> ReloadOutcome | None:
        for w in self.new_workers:
            if w.error is not None or not w.alive:
                return self._abort(f"worker {w.pid}: {w.error or 'exited before it was ready'}")
        assert self.loaded is not None and self.worker_config is not None
        if not all(w.state == WorkerState.READY for w in self.new_workers):
            if self._clock() >= self.deadline:
                waiting = [str(w.pid) for w in self.new_workers if w.state != WorkerState.READY]
                timeout = self.loaded.config.server.reload_readiness_timeout_seconds
                return self._abort(f"worker(s) {', '.join(waiting)} not ready within {timeout}s")
            return None
        self.ready_seconds = self._clock() - self.started
        log.info(
            "reload.generation_ready",
            generation=self.generation,
            workers=len(self.new_workers),
            ready_seconds=round(self.ready_seconds, 3),
        )
        # Point of no return: the new generation serves, so the reload is committed
        # now; the old generation drains in the background (with deadlines). Waiting
        # for the drain before answering would deadlock POST /admin/reload, whose
        # request is in flight on an old worker.
        gens = self._generations
        timeout = gens.drain_policy.kill_after_seconds  # the old config's deadline
        self.old_workers = self._pool.drain_before(self.generation, timeout)
        log.info(
            "generation.draining",
            generation=gens.serving,
            worker_pids=[w.pid for w in self.old_workers],
            timeout=timeout,
        )
        gens.switch(self.generation, self.loaded, self.listeners, self.worker_config)
        self.phase = ReloadPhase.DRAINING
        return self._commit()

    def _stop_new_generation(self) -> None:
        self._pool.abandon(self.new_workers)
        self._close_new_listener()
        self.phase = ReloadPhase.DONE

    def _close_new_listener(self) -> None:
        if self.new_listener is not None:
            self.new_listener.close()

    def _abort(self, error: str) -> ReloadOutcome:
        self._stop_new_generation()
        return self._outcome(ReloadResult.READINESS_FAILED, error=error)

    def _commit(self) -> ReloadOutcome:
        assert self.loaded is not None
        gens = self._generations
        outcome = ReloadOutcome(
            result=ReloadResult.COMMITTED,
            trigger=self.trigger,
            version=gens.version + 1,
            hash=self.loaded.hash,
            changed=self.changed,
            duration_seconds=self._clock() - self.started,
            ready_seconds=self.ready_seconds,
        )
        gens.commit(self.loaded, outcome.version)
        self._committed_at = self._clock()
        log.info(
            "reload.committed",
            version=outcome.version,
            hash=outcome.hash,
            trigger=self.trigger,
            changed=self.changed,
            values=redacted_values(self.loaded.config, self.changed),
            ready_seconds=round(self.ready_seconds or 0.0, 3),
            duration_seconds=round(outcome.duration_seconds, 3),
        )
        return outcome

    def abandon(self) -> ReloadOutcome | None:
        """The supervisor is stopping: stop a starting generation (readiness_failed)."""
        if self.phase is not ReloadPhase.STARTING:
            self.phase = ReloadPhase.DONE
            return None  # already reported (committed, draining) or never started
        self._stop_new_generation()
        return self._outcome(ReloadResult.READINESS_FAILED, error="supervisor is stopping")
