"""Watch the config inputs on disk and call back once per real content change.

API (the arbiter codes against exactly this)::

    watcher = ConfigWatcher(
        paths=[main_file, profile_file, configmap_dir, secrets_dir],
        fingerprint=lambda: hash_of_every_config_input(),   # caller-provided
        on_change=lambda reason, fp: queue.put(("reload", reason, fp)),
        debounce_seconds=0.5,
        recheck_interval_seconds=30.0,                      # 0 disables
        settle_seconds=0.2,
    )
    watcher.start()            # takes the first fingerprint as the baseline
    watcher.update(new_paths)  # after a reload changed which inputs exist
    watcher.acknowledge(fp)    # optional: "I loaded the inputs with this fingerprint"
    watcher.forget()           # "what you reported was not applied: report it again"
    watcher.reconfigure(debounce_seconds=1.0, recheck_interval_seconds=60.0)  # on reload
    watcher.stop()

How it decides, and why:

- watchdog (inotify) does not follow symlinks, and kubelet updates a ConfigMap/Secret
  volume by renaming a ``..data_tmp`` symlink over ``..data`` (each key is a symlink
  ``key -> ..data/key``). A watch on the key file sees nothing, so we watch
  *directories*: the parent directory of every file, and every directory given.
- Editors produce several events per save (in-place write: modified x3; atomic save:
  write a temp file, then move it over). Every relevant event only restarts a debounce
  timer (the debounce runs from the *last* event); once the directories are quiet for
  ``debounce_seconds`` we call ``fingerprint()`` (a content hash of all inputs) and call
  ``on_change(reason, fingerprint)`` only when it differs from the last fingerprint
  seen. A ``touch`` therefore reloads nothing.
- A file being written non-atomically (`cp`, a shell redirect, many editors: truncate,
  then write, maybe with pauses) must never be reported half-written (issue 14). So the
  inputs must *settle*: the fingerprint is taken twice, ``settle_seconds`` apart, with
  no event in between, and must match (the loader also refuses a read during which a
  file's size or mtime moved, and such a read never fingerprints equal to another).
  Otherwise the watcher waits for quiet again and retries, saying so at debug level.
  The fingerprint handed to ``on_change`` lets the reload check it read those bytes.
- inotify can be unavailable (ENOSPC/EMFILE limits) or blind (network filesystems), so
  the same thread also re-checks the fingerprint every ``recheck_interval_seconds``.
- ``on_change`` runs on the watcher thread; the caller's callback must only enqueue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = structlog.get_logger("redis_gateway.watch")

# Reading a file (our own fingerprint() included) emits these; reacting to them would
# make the watcher wake itself up forever.
_IGNORED_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})


_RECHECK = "periodic re-check"
# Internal wake-up reason: the re-check interval changed, recompute the next deadline.
_RESCHEDULE = "reschedule"


def _as_text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


class _Targets:
    """Which directories to watch and which events in them matter."""

    def __init__(self, paths: Sequence[Path]) -> None:
        # Whole directories (ConfigMap/Secret mounts): any entry change matters.
        self.whole_dirs: set[Path] = set()
        # Directory -> names of the files we care about in it.
        self.files_by_dir: dict[Path, set[str]] = {}
        for raw in paths:
            path = Path(raw).absolute()
            if path.is_dir():
                self.whole_dirs.add(path)
            else:
                self.files_by_dir.setdefault(path.parent, set()).add(path.name)

    def directories(self) -> set[Path]:
        return self.whole_dirs | set(self.files_by_dir)

    def relevant(self, event_path: str) -> bool:
        if not event_path:
            return False
        path = Path(event_path)
        if path in self.whole_dirs:
            return True
        parent, name = path.parent, path.name
        if parent in self.whole_dirs:
            return True
        names = self.files_by_dir.get(parent)
        if names is None:
            return False
        # A key symlink that lives beside other files (`gateway.toml -> ..data/...`)
        # changes through kubelet's `..data` swap, not through an event on its own name.
        return name in names or name.startswith("..")


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ConfigWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        self._watcher._on_event(_as_text(event.src_path), _as_text(event.dest_path))


class ConfigWatcher:
    """Calls ``on_change(reason, fingerprint)`` once per settled change of
    ``fingerprint()`` (see module doc)."""

    def __init__(
        self,
        paths: Sequence[Path],
        fingerprint: Callable[[], str],
        on_change: Callable[[str, str], None],
        debounce_seconds: float,
        recheck_interval_seconds: float,
        *,
        settle_seconds: float = 0.2,
    ) -> None:
        self._fingerprint = fingerprint
        self._on_change = on_change
        self._debounce = max(0.0, debounce_seconds)
        self._recheck = max(0.0, recheck_interval_seconds)
        self._settle = max(0.0, settle_seconds)
        self._targets = _Targets(paths)
        self._cond = threading.Condition()
        self._dirty_since: float | None = None  # last relevant event (monotonic)
        self._dirty_path = ""
        self._stopped = False
        self._last_seen: str | None = None
        self._recheck_changed = False
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None

    # -- public API --------------------------------------------------------------

    def start(self) -> None:
        """Take the baseline fingerprint, start watching and the re-check thread."""
        if self._thread is not None:
            return
        with self._cond:
            self._stopped = False  # a stopped watcher may be started again
        if self._last_seen is None:
            self._last_seen = self._safe_fingerprint()
        self._observer = Observer()
        self._observer.daemon = True
        self._schedule(self._targets)
        self._observer.start()
        self._thread = threading.Thread(
            target=self._run, name="redis-gateway-config-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the threads have ended (idempotent)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def update(self, paths: Sequence[Path]) -> None:
        """Watch a new set of inputs (after a reload changed which files exist)."""
        targets = _Targets(paths)
        with self._cond:
            unchanged = targets.directories() == self._targets.directories()
            self._targets = targets
        # Called after every commit: re-creating identical inotify watches would only
        # open a window in which events are lost.
        if self._observer is not None and not unchanged:
            self._observer.unschedule_all()
            self._schedule(targets)

    def reconfigure(
        self,
        debounce_seconds: float,
        recheck_interval_seconds: float,
        settle_seconds: float | None = None,
    ) -> None:
        """Apply reloaded ``supervisor.watch_debounce_ms`` / ``recheck_interval_seconds``
        / ``watch_settle_ms``."""
        with self._cond:
            self._debounce = max(0.0, debounce_seconds)
            self._recheck = max(0.0, recheck_interval_seconds)
            if settle_seconds is not None:
                self._settle = max(0.0, settle_seconds)
            self._recheck_changed = True
            self._cond.notify_all()

    def acknowledge(self, fingerprint: str) -> None:
        """Record that the caller has loaded inputs with this fingerprint.

        Optional: after a reload triggered some other way (SIGHUP, `redis-gateway
        reload`), this keeps the watcher from reporting the same change again.
        """
        with self._cond:
            self._last_seen = fingerprint

    def forget(self) -> None:
        """What was last reported was not applied (the reload read other bytes than
        the ones that settled): report the inputs again once they settle, even if
        they settle back to the same content."""
        with self._cond:
            self._last_seen = None
            self._dirty_since = time.monotonic()
            self._dirty_path = self._dirty_path or "inputs not applied yet"
            self._cond.notify_all()

    # -- internals ---------------------------------------------------------------

    def _schedule(self, targets: _Targets) -> None:
        assert self._observer is not None
        handler = _Handler(self)
        for directory in sorted(targets.directories()):
            if not directory.is_dir():
                # The periodic re-check still covers it (e.g. a mount not there yet).
                log.warning("watch.directory_missing", directory=str(directory))
                continue
            try:
                self._observer.schedule(handler, str(directory), recursive=False)
            except OSError as exc:  # inotify limits: ENOSPC (watches), EMFILE (instances)
                log.warning(
                    "watch.unavailable",
                    directory=str(directory),
                    error=str(exc),
                    fallback_recheck_seconds=self._recheck,
                )

    def _on_event(self, src_path: str, dest_path: str) -> None:
        with self._cond:
            targets = self._targets
            hit = next((p for p in (dest_path, src_path) if targets.relevant(p)), None)
            if hit is None:
                return
            self._dirty_since = time.monotonic()
            self._dirty_path = hit
            self._cond.notify_all()

    def _safe_fingerprint(self) -> str | None:
        try:
            return self._fingerprint()
        except Exception as exc:  # a half-written input; the next event or re-check retries
            log.warning("watch.fingerprint_failed", error=str(exc))
            return None

    def _run(self) -> None:
        next_recheck = time.monotonic() + self._recheck if self._recheck else None
        while True:
            with self._cond:
                reason = self._wait_for_reason_locked(next_recheck)
                if reason is None:
                    return
                if reason in (_RECHECK, _RESCHEDULE):
                    next_recheck = time.monotonic() + self._recheck if self._recheck else None
            if reason != _RESCHEDULE:
                self._check(reason)

    def _wait_for_reason_locked(self, next_recheck: float | None) -> str | None:
        """Block until the debounce expired or a re-check is due; None once stopped."""
        while not self._stopped:
            if self._recheck_changed:
                self._recheck_changed = False
                return _RESCHEDULE
            now = time.monotonic()
            deadlines = []
            if self._dirty_since is not None:
                quiet_at = self._dirty_since + self._debounce
                if now >= quiet_at:
                    self._dirty_since = None
                    return f"file changed: {self._dirty_path}"
                deadlines.append(quiet_at)
            if next_recheck is not None:
                if now >= next_recheck:
                    return _RECHECK
                deadlines.append(next_recheck)
            self._cond.wait(timeout=(min(deadlines) - now) if deadlines else None)
        return None

    def _check(self, reason: str) -> None:
        current = self._settled_fingerprint(reason)
        if current is None:
            return
        with self._cond:
            if current == self._last_seen or self._stopped:
                return
            self._last_seen = current
        log.info("watch.changed", reason=reason)
        try:
            self._on_change(reason, current)
        except Exception as exc:  # the watcher must outlive a faulty callback
            log.exception("watch.callback_failed", error=str(exc))

    def _settled_fingerprint(self, reason: str) -> str | None:
        """The inputs' fingerprint once it holds across ``settle_seconds`` with no
        event in between; None (and the check re-armed) while they are still moving."""
        first = self._safe_fingerprint()
        if first is None:
            return None
        with self._cond:
            event_seen = self._dirty_since
            settle_until = time.monotonic() + self._settle
            while not self._stopped and self._dirty_since == event_seen:
                remaining = settle_until - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(timeout=remaining)
            if self._stopped:
                return None
            if self._dirty_since != event_seen:
                # More events: the main loop waits for quiet again, then re-checks.
                log.debug("watch.unsettled", reason=reason, why="more events while settling")
                return None
        second = self._safe_fingerprint()
        if second is None:
            return None
        if second != first:
            log.debug(
                "watch.unsettled",
                reason=reason,
                why="content changed while settling (a write in progress)",
            )
            with self._cond:
                # Nothing may come from inotify (e.g. a periodic re-check found it):
                # look again after another quiet period.
                self._dirty_since = time.monotonic()
                self._dirty_path = self._dirty_path or reason
                self._cond.notify_all()
            return None
        return second
