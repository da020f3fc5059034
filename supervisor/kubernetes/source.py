"""The Kubernetes API source: keep local mirrors of a ConfigMap and a Secret.

One thread per object runs the list-then-watch loop (client-go's reflector, small):

1. list the object (by name) and mirror it; remember the list's resourceVersion;
2. watch from that version; mirror every ADDED/MODIFIED, empty the mirror on DELETED,
   and remember the version of every event, bookmarks included;
3. the stream ends (the server's ``timeoutSeconds``): watch again from the last
   version; ERROR 410 Gone (the version is too old): list again;
4. any other failure (connect, TLS, 401/403/5xx, a broken stream): log it, wait a
   capped exponential backoff, then watch again from the last version (or list, if
   there is none yet, or if the failure was a malformed answer). The backoff is reset
   by the first event of a stream.

The mirrors are ordinary kubelet-style volume directories (see ``mirror.py``), so the
config loader and its watcher treat them exactly like mounted volumes: same debounce,
same settle check, same content hash, no loader change. Unchanged data is never
rewritten, so bookmarks and re-lists reload nothing.

Logs name objects, keys and resourceVersions, never a value (nor the token).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from supervisor.kubernetes.api import ApiClient, WatchEvent
from supervisor.kubernetes.backoff import Backoff
from supervisor.kubernetes.errors import ApiError, GoneError, KubernetesError, ProtocolError
from supervisor.kubernetes.mirror import Mirror
from supervisor.kubernetes.objects import (
    CONFIGMAP,
    SECRET,
    Extracted,
    ObjectKind,
    extract,
    object_name,
    resource_version,
)
from supervisor.kubernetes.settings import (
    DEFAULT_NAMESPACE_PATH,
    KubernetesSettings,
    resolve_api_url,
    resolve_namespace,
)

log = structlog.get_logger("redis_gateway.kubernetes")

# A stream that ends by itself sooner than this without a single event is followed
# by a backoff delay, so a server that closes at once is not hammered.
MIN_STREAM_SECONDS = 1.0
_CHANGES = frozenset({"ADDED", "MODIFIED"})


class KubernetesSource:
    """Mirror the configured ConfigMap into ``<directory>/configmap`` and the Secret
    into ``<directory>/secrets``, kept up to date by watching the API.

    ``start()`` starts one daemon thread per object; ``wait_synced()`` waits for the
    first list of each (mirrored, or emptied when the object does not exist);
    ``stop()`` ends the threads, also when they are blocked on a silent stream.
    Raises ``SettingsError`` when the API URL or the namespace cannot be determined.
    """

    def __init__(
        self,
        settings: KubernetesSettings,
        directory: Path,
        *,
        env: Mapping[str, str] | None = None,
        namespace_path: Path = DEFAULT_NAMESPACE_PATH,
    ) -> None:
        api_url = resolve_api_url(settings, os.environ if env is None else env)
        self.api_url = api_url
        self.namespace = resolve_namespace(settings, namespace_path)
        self.settings = settings
        self.directory = directory
        self.configmap_dir = directory / CONFIGMAP.directory if settings.configmap else None
        self.secrets_dir = directory / SECRET.directory if settings.secret else None
        self._stop = threading.Event()
        self._watchers: list[ObjectWatcher] = []
        self._threads: list[threading.Thread] = []
        for kind, name in ((CONFIGMAP, settings.configmap), (SECRET, settings.secret)):
            if name is None:
                continue
            client = ApiClient(
                api_url,
                self.namespace,
                token_path=settings.token_path,
                ca_path=settings.ca_path,
                timeout_seconds=settings.timeout_seconds,
                watch_timeout_seconds=settings.watch_timeout_seconds,
            )
            backoff = Backoff(settings.backoff_initial_seconds, settings.backoff_max_seconds)
            mirror = Mirror(directory / kind.directory, secret=kind.secret)
            self._watchers.append(
                ObjectWatcher(
                    client,
                    kind,
                    name,
                    namespace=self.namespace,
                    mirror=mirror,
                    backoff=backoff,
                    stop=self._stop,
                )
            )

    def start(self) -> None:
        """Start watching (once)."""
        if self._threads or self._stop.is_set():
            raise RuntimeError("KubernetesSource.start() may be called once")
        for watcher in self._watchers:
            thread = threading.Thread(
                target=watcher.run,
                daemon=True,
                name=f"kubernetes-{watcher.kind.plural}/{watcher.name}",
            )
            self._threads.append(thread)
            thread.start()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once every object has been listed and mirrored at least once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for watcher in self._watchers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not watcher.synced.wait(remaining):
                return False
        return True

    def unsynced(self) -> list[str]:
        """The objects not listed yet, each with the last error met (never a value)."""
        return [
            f"{w.kind.kind} {w.name}" + (f" (last error: {w.last_error})" if w.last_error else "")
            for w in self._watchers
            if not w.synced.is_set()
        ]

    def stop(self, timeout: float | None = None) -> None:
        """Stop the threads and wait for them (at most ``timeout`` seconds each;
        default: the request timeout, which bounds a connect in progress)."""
        self._stop.set()
        for watcher in self._watchers:
            watcher.client.interrupt()
        wait = self.settings.timeout_seconds + 1.0 if timeout is None else timeout
        for thread in self._threads:
            thread.join(wait)


class ObjectWatcher:
    """The list/watch/mirror loop of one object (runs on its own thread)."""

    def __init__(
        self,
        client: ApiClient,
        kind: ObjectKind,
        name: str,
        *,
        namespace: str,
        mirror: Mirror,
        backoff: Backoff,
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.kind = kind
        self.name = name
        self.mirror = mirror
        self.backoff = backoff
        self.synced = threading.Event()
        #: The last failure (as logged), for a caller that gives up waiting.
        self.last_error: str | None = None
        self._stop = stop
        self._context = {"kind": kind.kind, "namespace": namespace, "object": name}
        #: The last resourceVersion seen; None: list (again) before watching.
        self.version: str | None = None
        self._gone_in_a_row = 0

    @property
    def _log(self) -> Any:  # Any: structlog's BoundLogger is untyped
        # Bound at each use, not once: a logger bound before the supervisor configures
        # logging would keep the processors of that moment.
        return log.bind(**self._context)

    def run(self) -> None:
        """Loop until stopped: list when needed, watch, back off after failures."""
        while not self._stop.is_set():
            error: str | None = None
            delay = 0.0
            try:
                delay = self._cycle()
            except GoneError as exc:
                self._log.info(
                    "kubernetes.relist", resource_version=self.version, reason=exc.reason
                )
                self.version = None
                self._gone_in_a_row += 1
                if self._gone_in_a_row == 1:
                    continue  # the normal case: list again at once
                error = f"{exc}, again right after a list"
            except ProtocolError as exc:
                # What we were told cannot be trusted (nor resumed from): list again, so
                # one malformed event is not received again on every reconnect.
                error = str(exc)
                self.version = None
            except KubernetesError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must not end the thread silently
                # Only the type and place: a message could quote data.
                error = f"unexpected {type(exc).__name__} at {_where(exc)}"
            if self._stop.is_set():
                break
            if error is not None:
                self.last_error = error
                delay = self.backoff.next_delay()
                self._log.warning(
                    "kubernetes.reconnect",
                    resource_version=self.version,
                    delay_seconds=round(delay, 3),
                    attempt=self.backoff.failures,
                    error=error,
                )
            self._stop.wait(delay)

    def _cycle(self) -> float:
        """List if needed, then watch until the stream ends; the delay before the next."""
        if self.version is None:
            self._list()
        if self.version is None:
            raise ApiError(
                404,
                "NotFound",
                f"listing {self.kind.plural} answered 404 (mirrored as absent); listing again",
            )
        started = time.monotonic()
        events = 0
        for event in self.client.watch(self.kind, self.name, self.version):
            if events == 0:
                self.backoff.reset()
                self._gone_in_a_row = 0
            events += 1
            self._handle(event)
        lived = time.monotonic() - started
        if lived >= MIN_STREAM_SECONDS:
            self.backoff.reset()
        # A server that ends streams at once, without an event, is not hammered.
        delay = 0.0 if events or lived >= MIN_STREAM_SECONDS else self.backoff.next_delay()
        if not self._stop.is_set():
            self._log.info(
                "kubernetes.reconnect",
                resource_version=self.version,
                reason="stream ended",
                events=events,
                stream_seconds=round(lived, 3),
                delay_seconds=round(delay, 3),
            )
        return delay

    def _list(self) -> None:
        listed = self.client.list(self.kind, self.name)
        self._log.info(
            "kubernetes.listed",
            resource_version=listed.resource_version,
            found=listed.obj is not None,
        )
        what = f"{self.kind.kind} {self.name}"
        if listed.obj is None:
            self._mirror(Extracted({}), listed.resource_version)
        else:
            self._mirror(extract(self.kind, listed.obj, what), resource_version(listed.obj, what))
        self.version = listed.resource_version
        self.synced.set()

    def _handle(self, event: WatchEvent) -> None:
        what = f"{self.kind.kind} {self.name} ({event.type} event)"
        version = resource_version(event.obj, what)
        if event.type in _CHANGES or event.type == "DELETED":
            if object_name(event.obj) == self.name:
                self._log.info("kubernetes.watch_event", type=event.type, resource_version=version)
                extracted = (
                    Extracted({})
                    if event.type == "DELETED"
                    else extract(self.kind, event.obj, what)
                )
                self._mirror(extracted, version)
        else:  # BOOKMARK, or a type this client does not know: only the version moves
            self._log.debug("kubernetes.watch_event", type=event.type, resource_version=version)
        # Only once mirrored: after a failure the event is received again.
        self.version = version

    def _mirror(self, extracted: Extracted, version: str | None) -> None:
        for key in extracted.skipped:
            self._log.warning(
                "kubernetes.key_skipped",
                key=key,
                reason="not a safe file name (contains '/', is '.' or '..', or starts with '..')",
            )
        if self.mirror.write(extracted.payload):
            self._log.info(
                "kubernetes.mirrored",
                resource_version=version,
                keys=sorted(extracted.payload),
                directory=str(self.mirror.directory),
            )


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
