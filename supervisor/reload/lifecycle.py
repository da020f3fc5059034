"""What config runs, what the sources say, and how to go back (issue 9).

``Lifecycle`` owns the inputs the reloads read (with a restored backup pinned over them,
or not), the drift state, the periodic comparison of the sources with the running
config, and the answers to ``diff``, ``plan`` and ``restore`` on the control socket.
The arbiter calls it; it calls nothing back.

A restore pins a backup's non-secret config over the sources (secrets keep coming from
them) until the files are brought in line: once the sources *without* the pin produce
the running config, the pin is dropped by itself; ``reload --discard-restore`` drops it
at once. A failed restore leaves the previous inputs in place.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from supervisor.config import ConfigError, ConfigInputs, LoadedConfig
from supervisor.config.restore import Restore
from supervisor.config.store import Backup, StateStore
from supervisor.reload.drift import Drift, DriftState, compare, diff_rows, restart_only_changes
from supervisor.reload.outcome import ReloadOutcome, ReloadResult
from supervisor.reload.transaction import Loader, config_diff

log = structlog.get_logger("redis_gateway.lifecycle")

Clock = Callable[[], float]


@dataclass(frozen=True)
class Resumed:
    """``run --resume-last-good`` started from a backup: the inputs that load it (the
    backup pinned over the secret sources) and the problems of the real sources."""

    inputs: ConfigInputs
    problems: list[str]


#: A reply on the control socket (JSON-able).
Reply = dict[str, object]


class Lifecycle:
    """Inputs, drift, restore pins, diffs and plans of one supervisor."""

    def __init__(
        self,
        inputs: ConfigInputs,
        boot: LoadedConfig,
        loader: Loader,
        store: StateStore | None,
        *,
        clock: Clock = time.monotonic,
        resumed: Resumed | None = None,
    ) -> None:
        self._files = dataclasses.replace(inputs, restore=None)
        self.inputs = resumed.inputs if resumed is not None else inputs
        self._boot = boot
        self._loader = loader
        self.store = store
        self._clock = clock
        self.drift = Drift()
        self._next_check = 0.0
        self._before_restore: ConfigInputs | None = None
        if resumed is not None:
            self._check_resumed()

    @property
    def pinned(self) -> str | None:
        """The label of the restored backup pinned over the sources, if any."""
        return self.inputs.restore.label if self.inputs.restore is not None else None

    def reload_inputs(self) -> ConfigInputs:
        """The inputs the next reload reads. A resume-last-good pin gives way as soon as
        the sources are valid again: the reload then applies them."""
        pin = self.inputs.restore
        if pin is not None and pin.until_valid:
            try:
                self._loader(self._files)
            except ConfigError:
                return self.inputs
            log.info("restore.released", restore=pin.label, reason="the sources are valid")
            self.inputs = self._files
        return self.inputs

    # -- following reloads and the sources -----------------------------------------------

    def after(self, outcome: ReloadOutcome, running: LoadedConfig) -> bool:
        """A reload ended; True when the drift state changed."""
        if self._before_restore is not None:
            if outcome.failed or outcome.result in (ReloadResult.HELD, ReloadResult.DEFERRED):
                log.warning("restore.failed", restore=self.pinned, result=str(outcome.result))
                self.inputs = self._before_restore
            self._before_restore = None
        changed = self.drift.follow(outcome)
        if outcome.ok:
            changed |= self._settle(running)
        return changed

    def _settle(self, running: LoadedConfig) -> bool:
        """After a success: restart-only changes, and a pin the files have caught up with."""
        unapplied = restart_only_changes(config_diff(self._boot.config, running.config))
        if unapplied:
            return self.drift.become(DriftState.RESTART_REQUIRED, unapplied)
        if self.inputs.restore is not None:
            return self._check_pin(running)
        return False

    def check(self, running: LoadedConfig) -> bool:
        """Compare the sources with the running config now; True when the state changed."""
        try:
            sources = self._loader(self.inputs)
        except ConfigError as exc:
            return self.drift.become(DriftState.REJECTED, list(exc.problems))
        except Exception as exc:  # a loader bug must not take the supervisor down
            log.exception("drift.check_failed")
            return self.drift.become(DriftState.REJECTED, [f"loading the config failed: {exc!r}"])
        if self.inputs.restore is not None and self.inputs.restore.until_valid:
            return self._check_resumed()
        state, reasons = compare(self._boot, running, sources)
        changed = self.drift.become(state, reasons)
        if state is DriftState.IN_SYNC and self.inputs.restore is not None:
            changed |= self._check_pin(running)
        return changed

    def _check_resumed(self) -> bool:
        """Started from the last good config: rejected while the files are invalid,
        pending once they are valid (the next reload applies them)."""
        try:
            self._loader(self._files)
        except ConfigError as exc:
            return self.drift.become(
                DriftState.REJECTED,
                [
                    f"serving {self.pinned} (run --resume-last-good); the sources are invalid:",
                    *exc.problems,
                ],
            )
        return self.drift.become(
            DriftState.PENDING,
            [f"serving {self.pinned}; the sources are valid again: reload to apply them"],
        )

    def _check_pin(self, running: LoadedConfig) -> bool:
        """Drop the pin once the files alone produce the running config; else say so."""
        label = self.pinned
        try:
            files = self._loader(self._files)
        except ConfigError:
            files = None
        if files is not None and files.hash == running.hash:
            log.info("restore.released", restore=label, reason="the files match it now")
            self.inputs = self._files
            return self.drift.become(DriftState.IN_SYNC, [])
        differ = config_diff(files.config, running.config) if files is not None else []
        reason = (
            f"running {label}, restored over the sources; the files differ"
            + (f" in {', '.join(differ)}" if differ else " (they are invalid)")
            + ": bring them in line (`redis-gateway config backups show N --format toml`) "
            "or `redis-gateway reload --discard-restore`"
        )
        return self.drift.become(DriftState.PENDING, [reason])

    def tick(self, running: LoadedConfig, busy: bool) -> bool:
        """The periodic comparison (``supervisor.drift_check_interval_seconds``)."""
        interval = running.config.supervisor.drift_check_interval_seconds
        now = self._clock()
        if busy or not interval or now < self._next_check:
            return False
        self._next_check = now + interval
        return self.check(running)

    # -- control-socket answers ----------------------------------------------------------

    def diff(self, running: LoadedConfig) -> Reply:
        """``config diff``: the running config against the sources (the files, env, ...;
        never a restored backup pinned over them), key by key. The state is the drift
        state (the caller checks it first)."""
        drift = {
            "ok": True,
            "state": str(self.drift.state),
            "reasons": self.drift.reasons,
            "pinned": self.pinned,
            "running_hash": running.hash,
        }
        try:
            sources = self._loader(self._files)
        except ConfigError as exc:
            return {**drift, "problems": list(exc.problems), "rows": []}
        return {**drift, "sources_hash": sources.hash, "rows": diff_rows(running, sources)}

    def plan(self, running: LoadedConfig, text: str, fmt: str) -> Reply:
        """``POST /admin/config/plan``: ``text`` validated as if it replaced the main file."""
        if self._files.config_path is None and not self._files.env.get("REDIS_GATEWAY_CONFIG"):
            return {"ok": False, "error": "this supervisor runs without a main config file"}
        candidate = dataclasses.replace(self.inputs, main_text=text, main_format=fmt)
        try:
            planned = self._loader(candidate)
        except ConfigError as exc:
            return {"ok": True, "valid": False, "problems": list(exc.problems), "rows": []}
        return {
            "ok": True,
            "valid": True,
            "problems": [],
            "hash": planned.hash,
            "unchanged": planned.hash == running.hash,
            "rows": diff_rows(running, planned),
        }

    def restore(
        self,
        version: int,
        expect_version: int | None,
        running_version: int,
        dry_run: bool,
        running: LoadedConfig,
    ) -> Reply | None:
        """``config backups restore``: None when the reload may go ahead (the pin is set),
        else the reply (refused, or the dry run's diff)."""
        if self.store is None:
            return {"ok": False, "error": "no state directory: there are no backups"}
        if expect_version is not None and expect_version != running_version:
            return {
                "ok": False,
                "conflict": True,
                "error": f"the running version is {running_version}, not {expect_version}: "
                "something changed meanwhile; nothing was restored",
            }
        backup = self.store.backups().get(version)
        if backup is None:
            return {"ok": False, "error": f"no backup of version {version}"}
        pinned = dataclasses.replace(self._files, restore=_restore_of(backup))
        if dry_run:
            try:
                planned = self._loader(pinned)
            except ConfigError as exc:
                return {"ok": True, "valid": False, "problems": list(exc.problems), "rows": []}
            return {
                "ok": True,
                "valid": True,
                "dry_run": True,
                "secrets_from_sources": backup.secrets,
                "rows": diff_rows(running, planned),
            }
        self._before_restore = self.inputs
        self.inputs = pinned
        log.info("restore.requested", version=version, secrets_from_sources=backup.secrets)
        return None

    def discard_restore(self) -> bool:
        """Drop the pin (``reload --discard-restore``); False when there was none."""
        if self.inputs.restore is None:
            return False
        log.info("restore.discarded", restore=self.pinned)
        self.inputs = self._files
        return True


def _restore_of(backup: Backup) -> Restore:
    return Restore(label=f"backup v{backup.version}", tree=backup.config)
