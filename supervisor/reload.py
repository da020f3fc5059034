"""The reload transaction (DESIGN.md "Reload"), one step at a time.

    validate ─► diff ─► [bind new address] ─► start generation N+1 (parallel)
        │         │            │                      │
     invalid   unchanged   bind_failed     all ready before the deadline?
                                              │ no ─► stop N+1, keep N: readiness_failed
                                              ▼ yes
                               commit, then drain N (parallel, SIGKILL on deadline)

Nothing before "drain N" touches the serving generation, so any failure leaves the
old generation and the old config serving. The transaction never blocks: the
arbiter's main loop calls ``step()`` until it returns an outcome, so signals, status
requests and heartbeats keep being handled during a reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from gateway_worker.config import Config, dump_redacted, dump_with_secrets
from supervisor.config import ConfigError, ConfigInputs, LoadedConfig, load_config
from supervisor.sockets import BindError, Listener
from supervisor.watch_policy import held_reasons

log = structlog.get_logger("redis_gateway.reload")

#: bind_failed: the new address cannot be bound; error: the supervisor could not even
#: try (config loader crashed, workers could not be forked). Metrics count both as "error".
#: held: the watcher found a change it may not apply by itself (supervisor.watch_policy);
#: deferred: the watcher's reload read other bytes than the ones that settled (a write
#: in progress); it is retried once the inputs settle. Neither is a failure.
RESULTS = ("committed", "invalid", "unchanged", "readiness_failed", "bind_failed", "error",
           "held", "deferred")
FAILED_RESULTS = frozenset({"invalid", "readiness_failed", "bind_failed", "error"})


@dataclass(frozen=True)
class ReloadRequest:
    """Why a reload was asked for. ``fingerprint`` is set by the file watcher (the
    inputs it saw settle); a request without it is explicit (SIGHUP, control socket)."""

    trigger: str
    fingerprint: str | None = None

    @property
    def automatic(self) -> bool:
        return self.fingerprint is not None


@dataclass
class ReloadOutcome:
    """How one reload ended (reported to waiters, status, metrics, logs)."""

    result: str
    trigger: str
    version: int
    hash: str
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    #: Why a change was held (result "held"): rows of supervisor.watch_policy.
    reasons: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    #: Trigger → every new worker ready (the latency the benchmark targets).
    ready_seconds: float | None = None
    finished_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.result in ("committed", "unchanged")

    @property
    def failed(self) -> bool:
        return self.result in FAILED_RESULTS

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "ok": self.ok,
            "trigger": self.trigger,
            "version": self.version,
            "hash": self.hash,
            "error": self.error,
            "errors": self.errors,
            "changed": self.changed,
            "reasons": self.reasons,
            "duration_seconds": round(self.duration_seconds, 4),
            "ready_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 4),
            "finished_at": self.finished_at,
        }

    def summary(self) -> str:
        """One human line, as printed by `redis-gateway reload`."""
        if self.result == "committed":
            return f"reload committed: version {self.version} (hash {self.hash})"
        if self.result == "unchanged":
            return f"reload unchanged: version {self.version} (hash {self.hash})"
        if self.result == "held":
            return (f"reload held (apply it with SIGHUP or `redis-gateway reload`): "
                    f"{'; '.join(self.reasons)}")
        if self.result == "deferred":
            return f"reload deferred: {self.error}"
        detail = self.error or "; ".join(self.errors)
        return f"reload failed ({self.result}): {detail}"


class Host(Protocol):
    """What the transaction needs from the arbiter."""

    inputs: ConfigInputs
    current: LoadedConfig
    version: int
    generation: int

    def clock(self) -> float: ...
    def new_generation_number(self) -> int: ...
    def listener_for(self, config: Config) -> tuple[list[Listener], Listener | None]: ...
    def start_generation(self, generation: int, config: Config,
                         listeners: list[Listener]) -> list[Any]: ...
    def switch_generation(self, generation: int, loaded: LoadedConfig,
                          listeners: list[Listener]) -> list[Any]: ...
    def commit(self, loaded: LoadedConfig, outcome: ReloadOutcome) -> None: ...


def config_diff(old: Config, new: Config) -> list[str]:
    """Dotted key paths whose value changed (secrets compared, never shown)."""
    changed: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            changed.append(path)

    walk(dump_with_secrets(old), dump_with_secrets(new), "")
    return changed


def redacted_values(config: Config, paths: list[str]) -> dict[str, Any]:
    """The new values at ``paths``, with secrets masked (for the commit log)."""
    data = dump_redacted(config)
    result: dict[str, Any] = {}
    for path in paths:
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        result[path] = node
    return result


class ReloadTransaction:
    """One reload; call ``begin()`` once, then ``step()`` until it returns an outcome."""

    def __init__(self, host: Host, trigger: str,
                 loader: Callable[[ConfigInputs], LoadedConfig] = load_config,
                 expected_fingerprint: str | None = None) -> None:
        self.host = host
        self.trigger = trigger
        self.loader = loader
        #: Set for a watcher-only reload: it must read what the watcher saw settle,
        #: and it may not apply a change supervisor.watch_policy holds.
        self.expected_fingerprint = expected_fingerprint
        #: The fingerprint of the inputs this reload read (None until it read them).
        self.inputs_fingerprint: str | None = None
        self.started = host.clock()
        self.phase = "new"
        self.loaded: LoadedConfig | None = None
        self.new_workers: list[Any] = []
        self.old_workers: list[Any] = []
        self.new_listener: Listener | None = None
        self.listeners: list[Listener] = []
        self.deadline = 0.0
        self.ready_seconds: float | None = None
        self.changed: list[str] = []
        self.generation = 0

    def _outcome(self, result: str, **kw: Any) -> ReloadOutcome:
        host = self.host
        outcome = ReloadOutcome(
            result=result, trigger=self.trigger, version=host.version,
            hash=host.current.hash, duration_seconds=host.clock() - self.started, **kw,
        )
        if outcome.failed:
            log.error("reload.failed", result=result, trigger=self.trigger,
                      error=outcome.error, errors=outcome.errors, version=host.version)
        elif result == "held":
            log.warning("reload.held", trigger=self.trigger, reasons=outcome.reasons,
                        changed=outcome.changed, version=host.version,
                        apply_with="SIGHUP or `redis-gateway reload`")
        elif result == "deferred":
            log.info("reload.deferred", trigger=self.trigger, reason=outcome.error)
        elif result == "unchanged":
            log.info("reload.unchanged", trigger=self.trigger, version=host.version)
        return outcome

    def _read_unsettled(self, fingerprint: str | None) -> ReloadOutcome | None:
        """A watcher reload that read other bytes than those that settled: deferred."""
        self.inputs_fingerprint = fingerprint
        if self.expected_fingerprint is None or fingerprint == self.expected_fingerprint:
            return None
        return self._outcome("deferred", error="the inputs changed after they settled "
                             "(a write in progress); retried once they settle again")

    @property
    def finished(self) -> bool:
        """True once nothing of this reload is left (old generation gone, or failed)."""
        return self.phase in ("new", "done") or (
            self.phase == "draining" and not any(w.alive for w in self.old_workers))

    def begin(self) -> ReloadOutcome | None:
        host = self.host
        log.info("reload.started", trigger=self.trigger, version=host.version)
        self.phase = "done"  # until generation N+1 is started below
        try:
            loaded = self.loader(host.inputs)
        except ConfigError as exc:
            return self._read_unsettled(exc.inputs_fingerprint) or self._outcome(
                "invalid", errors=list(exc.problems),
                error=f"invalid configuration ({len(exc.problems)} problem(s))")
        except Exception as exc:  # a loader bug must not take the supervisor down
            log.exception("reload.loader_crashed")
            return self._outcome("error", error=f"loading the config failed: {exc!r}")
        unsettled = self._read_unsettled(loaded.inputs_fingerprint)
        if unsettled is not None:
            return unsettled
        if loaded.hash == host.current.hash:
            return self._outcome("unchanged")
        self.loaded = loaded
        self.changed = config_diff(host.current.config, loaded.config)
        if self.expected_fingerprint is not None:
            reasons = held_reasons(host.current.config, loaded.config)
            if reasons:
                return self._outcome("held", reasons=reasons, changed=self.changed)
        try:
            self.listeners, self.new_listener = host.listener_for(loaded.config)
        except BindError as exc:
            return self._outcome("bind_failed", error=str(exc))
        self.generation = host.new_generation_number()
        try:
            self.new_workers = host.start_generation(
                self.generation, loaded.config, self.listeners)
        except OSError as exc:  # fork/exec failed (EAGAIN, ENOMEM, ...)
            if self.new_listener is not None:
                self.new_listener.close()
            return self._outcome("error", error=f"cannot start workers: {exc}")
        self.deadline = self.started + loaded.config.server.reload_readiness_timeout_seconds
        self.phase = "starting"
        return None

    def step(self) -> ReloadOutcome | None:
        """Advance; returns the outcome once, when it becomes known."""
        if self.phase == "starting":
            return self._step_starting()
        if self.phase == "draining" and not any(w.alive for w in self.old_workers):
            self.phase = "done"
            log.info("reload.drained", generation=self.generation,
                     seconds=round(self.host.clock() - self.started, 3))
        return None

    def _step_starting(self) -> ReloadOutcome | None:
        host = self.host
        for w in self.new_workers:
            if w.error is not None or not w.alive:
                return self._abort(f"worker {w.pid}: {w.error or 'exited before it was ready'}")
        if not all(w.state == "ready" for w in self.new_workers):
            if host.clock() >= self.deadline:
                waiting = [str(w.pid) for w in self.new_workers if w.state != "ready"]
                assert self.loaded is not None
                timeout = self.loaded.config.server.reload_readiness_timeout_seconds
                return self._abort(
                    f"worker(s) {', '.join(waiting)} not ready within {timeout}s"
                )
            return None
        self.ready_seconds = host.clock() - self.started
        assert self.loaded is not None
        log.info("reload.generation_ready", generation=self.generation,
                 workers=len(self.new_workers), ready_seconds=round(self.ready_seconds, 3))
        # Point of no return: the new generation serves, so the reload is committed
        # now; the old generation drains in the background (with deadlines). Waiting
        # for the drain before answering would deadlock POST /admin/reload, whose
        # request is in flight on an old worker.
        self.old_workers = host.switch_generation(self.generation, self.loaded, self.listeners)
        self.phase = "draining"
        return self._commit()

    def _abort(self, error: str) -> ReloadOutcome:
        for w in self.new_workers:
            w.drain(2.0)
        if self.new_listener is not None:
            self.new_listener.close()
        self.phase = "done"
        return self._outcome("readiness_failed", error=error, ready_seconds=None)

    def _commit(self) -> ReloadOutcome:
        assert self.loaded is not None
        outcome = ReloadOutcome(
            result="committed", trigger=self.trigger, version=self.host.version + 1,
            hash=self.loaded.hash, changed=self.changed,
            duration_seconds=self.host.clock() - self.started, ready_seconds=self.ready_seconds,
        )
        self.host.commit(self.loaded, outcome)
        log.info("reload.committed", version=outcome.version, hash=outcome.hash,
                 trigger=self.trigger, changed=self.changed,
                 values=redacted_values(self.loaded.config, self.changed),
                 ready_seconds=round(self.ready_seconds or 0.0, 3),
                 duration_seconds=round(outcome.duration_seconds, 3))
        return outcome

    def abandon(self) -> ReloadOutcome | None:
        """The supervisor is stopping: stop a starting generation (outcome 'stopping')."""
        if self.phase != "starting":
            self.phase = "done"
            return None  # already reported (committed, draining) or never started
        for w in self.new_workers:
            w.drain(2.0)
        if self.new_listener is not None:
            self.new_listener.close()
        self.phase = "done"
        return self._outcome("readiness_failed", error="supervisor is stopping")
