"""Is the running config what the sources say? The supervisor's answer, kept current
from every reload outcome.

States: ``in_sync`` (the last reload read the sources and runs them), ``pending`` (the
sources hold a change that is not applied: held by supervisor.reload.watch_policy, or its
reload failed), ``rejected`` (the sources are invalid: the last good config serves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from supervisor.reload.outcome import ReloadOutcome, ReloadResult


@dataclass
class Drift:
    state: str = "in_sync"
    since: float = field(default_factory=time.time)
    reasons: list[str] = field(default_factory=list)

    def follow(self, outcome: ReloadOutcome) -> None:
        """Update from how a reload ended."""
        if outcome.ok:
            self._become("in_sync", [])
        elif outcome.result is ReloadResult.HELD:
            self._become("pending", outcome.reasons)
        elif outcome.result is ReloadResult.INVALID:
            self._become("rejected", outcome.errors or [outcome.error or "invalid"])
        elif outcome.failed:
            self._become("pending", [f"the last reload failed ({outcome.result}): {outcome.error}"])
        # "deferred": nothing was decided; the watcher retries.

    def _become(self, state: str, reasons: list[str]) -> None:
        if state != self.state:
            self.since = time.time()
        self.state, self.reasons = state, list(reasons)

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "since": self.since, "reasons": self.reasons}
