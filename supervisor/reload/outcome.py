"""How a reload ended: the one list of results (metrics labels, status counts, logs) and
the outcome reported to waiters, status, metrics and logs.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class ReloadResult(enum.StrEnum):
    """Every way a reload can end; the values are what status, logs and metrics show.

    ``bind_failed``: the new address cannot be bound; ``error``: the supervisor could not
    even try (the config loader crashed, workers could not be forked). ``held``: the
    watcher found a change it may not apply by itself (supervisor.reload.watch_policy);
    ``deferred``: the watcher's reload read other bytes than the ones that settled (a
    write in progress) and is retried once the inputs settle. Neither of those two is a
    failure, nor a success.
    """

    COMMITTED = "committed"
    INVALID = "invalid"
    UNCHANGED = "unchanged"
    READINESS_FAILED = "readiness_failed"
    BIND_FAILED = "bind_failed"
    ERROR = "error"
    HELD = "held"
    DEFERRED = "deferred"

    @property
    def ok(self) -> bool:
        """The running config is what was asked for (`redis-gateway reload` exits 0)."""
        return self in (ReloadResult.COMMITTED, ReloadResult.UNCHANGED)

    @property
    def failed(self) -> bool:
        """The reload was tried and did not apply."""
        return self in (
            ReloadResult.INVALID,
            ReloadResult.READINESS_FAILED,
            ReloadResult.BIND_FAILED,
            ReloadResult.ERROR,
        )


@dataclass
class ReloadOutcome:
    """How one reload ended (reported to waiters, status, metrics, logs)."""

    result: ReloadResult
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

    def __post_init__(self) -> None:
        # Built from a control-socket reply too (`redis-gateway reload`), where it is text.
        self.result = ReloadResult(self.result)

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def failed(self) -> bool:
        return self.result.failed

    def as_dict(self) -> dict[str, object]:
        return {
            "result": str(self.result),
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
        if self.result in (ReloadResult.COMMITTED, ReloadResult.UNCHANGED):
            return f"reload {self.result}: version {self.version} (hash {self.hash})"
        if self.result is ReloadResult.HELD:
            return (
                f"reload held (apply it with SIGHUP or `redis-gateway reload`): "
                f"{'; '.join(self.reasons)}"
            )
        if self.result is ReloadResult.DEFERRED:
            return f"reload deferred: {self.error}"
        detail = self.error or "; ".join(self.errors)
        return f"reload failed ({self.result}): {detail}"
