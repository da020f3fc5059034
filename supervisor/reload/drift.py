"""Is the running config what the sources say? The supervisor's answer (issue 9).

States (``redis-gateway status``, the metric ``redis_gateway_config_drift{state}``):

* ``in_sync``: the sources produce the running config;
* ``pending``: the sources hold a valid change that is not applied (yet): the watcher
  holds it (supervisor.reload.watch_policy), its reload failed, no reload ran since it
  appeared, or a restored backup is pinned over files that say otherwise;
* ``rejected``: the sources are invalid: the last good config keeps serving;
* ``restart_required``: the only difference is a key a reload cannot apply (the table
  ``RESTART_ONLY`` below): it takes effect at the next start.

``Drift`` follows every reload outcome and every periodic or on-demand comparison of
the sources with the running config (``supervisor.reload.lifecycle``).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from gateway_worker.config import SECRET_MASK, KubernetesConfig, dump_redacted
from supervisor.config import LoadedConfig
from supervisor.config.layers import flatten
from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.reload.transaction import config_diff

#: Keys a reload cannot apply, and why: a change to them alone is ``restart_required``.
RESTART_ONLY: dict[str, str] = {
    "supervisor.control_socket": "the control socket is bound once, at start",
    "supervisor.state_dir": "the state directory is opened once, at start",
    **{
        f"kubernetes.{name}": "the Kubernetes API source is set up once, at start"
        for name in KubernetesConfig.model_fields
    },
}


class DriftState(enum.StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    REJECTED = "rejected"
    RESTART_REQUIRED = "restart_required"


@dataclass
class Drift:
    state: DriftState = DriftState.IN_SYNC
    since: float = field(default_factory=time.time)
    reasons: list[str] = field(default_factory=list)

    def follow(self, outcome: ReloadOutcome) -> bool:
        """Update from how a reload ended; True when the state changed."""
        if outcome.ok:
            return self.become(DriftState.IN_SYNC, [])
        if outcome.result is ReloadResult.HELD:
            return self.become(DriftState.PENDING, outcome.reasons)
        if outcome.result is ReloadResult.INVALID:
            return self.become(DriftState.REJECTED, outcome.errors or [outcome.error or "invalid"])
        if outcome.failed:
            reason = f"the last reload failed ({outcome.result}): {outcome.error}"
            return self.become(DriftState.PENDING, [reason])
        return False  # "deferred": nothing was decided; the watcher retries.

    def become(self, state: DriftState, reasons: list[str]) -> bool:
        """Set the state (``since`` moves only when the state does); True if it changed."""
        changed = state is not self.state
        if changed:
            self.since = time.time()
        self.state, self.reasons = state, list(reasons)
        return changed

    def as_dict(self) -> dict[str, object]:
        return {"state": str(self.state), "since": self.since, "reasons": self.reasons}


def restart_only_changes(changed: list[str]) -> list[str]:
    """The reasons of the changed keys a reload cannot apply."""
    return [f"{key}: {RESTART_ONLY[key]}" for key in changed if key in RESTART_ONLY]


def _shown(config: LoadedConfig) -> dict[str, object]:
    """Dotted key -> value as it may be shown (secrets and secret-sourced values masked)."""
    shown: dict[str, object] = {}
    for path, value in flatten(dump_redacted(config.config)):
        key = ".".join(path)
        source = config.provenance.get(key, "default")
        secret_source = source.startswith(("secret file ", "secrets "))
        shown[key] = SECRET_MASK if secret_source and value is not None else value
    return shown


def _leaf(key: str, known: dict[str, object]) -> str:
    """The flattened key (lists are leaves) a changed path belongs to."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return key


def diff_rows(running: LoadedConfig, sources: LoadedConfig) -> list[dict[str, object]]:
    """Key by key, what differs: both values (redacted) and where each came from."""
    a, b = _shown(running), _shown(sources)
    rows = []
    for key in dict.fromkeys(_leaf(k, a | b) for k in config_diff(running.config, sources.config)):
        same_shown = a.get(key) == b.get(key)
        rows.append(
            {
                "key": key,
                "running": {"value": a.get(key), "source": running.provenance.get(key)},
                "sources": {"value": b.get(key), "source": sources.provenance.get(key)},
                # Equal as shown but different: a secret (rotated) inside this key.
                "secret_changed": same_shown,
            }
        )
    return rows


def compare(
    boot: LoadedConfig, running: LoadedConfig, sources: LoadedConfig
) -> tuple[DriftState, list[str]]:
    """The drift state of ``sources`` against ``running`` (started as ``boot``) and why."""
    unapplied = restart_only_changes(config_diff(boot.config, running.config))
    if sources.hash == running.hash:
        if unapplied:
            return DriftState.RESTART_REQUIRED, unapplied
        return DriftState.IN_SYNC, []
    changed = config_diff(running.config, sources.config)
    restart = restart_only_changes(changed)
    if restart and len(restart) == len(changed):
        return DriftState.RESTART_REQUIRED, unapplied + restart
    return DriftState.PENDING, [f"the sources changed: {', '.join(changed)} (not reloaded yet)"]
