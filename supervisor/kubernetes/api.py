"""A small client for the two Kubernetes API calls the source needs: list and watch.

Both select one object by name (``fieldSelector=metadata.name=<name>``) in one
namespace. ``list`` gives the object (or None) and the list's resourceVersion;
``watch`` streams the events after a resourceVersion: one JSON object per line,
``{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": {...}}``, until
the server ends the stream (after ``timeoutSeconds``). An ``ERROR`` event is raised
(``GoneError`` for code 410, ``ApiError`` otherwise), the other events are yielded.

Stdlib only (``http.client`` + ``ssl``). Each request opens its own connection, with
the token read again from its file (kubelet rotates it) and the CA file loaded again.
``interrupt()``, from another thread, aborts the request in progress and every later
one: that is how the source's ``stop()`` ends a watch blocked on a silent stream.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from supervisor.kubernetes.errors import (
    ApiError,
    GoneError,
    ProtocolError,
    SettingsError,
    TransportError,
)
from supervisor.kubernetes.objects import JsonObject, ObjectKind, object_name, resource_version

USER_AGENT = "redis-gateway-supervisor"
# A ConfigMap or Secret is at most 1 MiB; base64 and JSON escaping can double that.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Listed:
    """A list answer: the object (None when absent) and the list's resourceVersion
    (None when the API answered 404, so there is nothing to watch from)."""

    resource_version: str | None
    obj: JsonObject | None


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream (never ERROR: those are raised)."""

    type: str
    obj: JsonObject


class ApiClient:
    """List and watch one named object at a time; one client per watching thread."""

    def __init__(
        self,
        api_url: str,
        namespace: str,
        *,
        token_path: Path | None,
        ca_path: Path | None,
        timeout_seconds: float,
        watch_timeout_seconds: int,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"kubernetes.api_url has value {api_url!r}: expected "
                "https://host[:port] (or http:// for a local proxy)"
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._namespace = namespace
        self._token_path = token_path
        self._ca_path = ca_path
        self._timeout = timeout_seconds
        self._watch_timeout = watch_timeout_seconds
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._interrupted = False

    def list(self, kind: ObjectKind, name: str) -> Listed:
        """The object named ``name`` (or None) and the list's resourceVersion."""
        what = f"list {kind.plural}/{name}"
        query = urlencode({"fieldSelector": f"metadata.name={name}"})
        conn, resp = self._request(f"{self._collection(kind)}?{query}", self._timeout, what)
        try:
            if resp.status == 404:
                return Listed(None, None)
            if resp.status != 200:
                raise _api_error(resp)
            body = _read(resp, MAX_LINE_BYTES, what)
        finally:
            self._release(conn)
        doc = _parse_json(body)
        if not isinstance(doc, dict):
            raise ProtocolError(f"{what}: the answer is not a JSON object")
        version = resource_version(doc, what)
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ProtocolError(f"{what}: items is not a list")
        found = [i for i in items if isinstance(i, dict) and object_name(i) == name]
        return Listed(version, found[0] if found else None)

    def watch(self, kind: ObjectKind, name: str, version: str) -> Iterator[WatchEvent]:
        """The events after ``version``, until the server ends the stream."""
        what = f"watch {kind.plural}/{name}"
        query = urlencode(
            {
                "fieldSelector": f"metadata.name={name}",
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self._watch_timeout),
            }
        )
        # The server may stay silent until its own timeout: read a little longer.
        conn, resp = self._request(
            f"{self._collection(kind)}?{query}", self._watch_timeout + self._timeout, what
        )
        try:
            if resp.status != 200:
                raise _api_error(resp)
            lines = _LineReader(resp, what)
            while line := lines.readline():
                if line.strip():
                    yield _event(line, what)
        finally:
            self._release(conn)

    def interrupt(self) -> None:
        """Abort the request in progress, and refuse every later one (thread-safe)."""
        with self._lock:
            self._interrupted = True
            conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                # The plain socket's shutdown, also for TLS: it wakes a blocked read
                # without touching the SSL object the reading thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def _collection(self, kind: ObjectKind) -> str:
        return f"{self._prefix}/api/v1/namespaces/{self._namespace}/{kind.plural}"

    def _request(
        self, path: str, read_timeout: float, what: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        token = self._read_token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = self._connection()
        self._track(conn, what)
        try:
            conn.connect()
            self._track(conn, what)  # stopped while connecting?
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
        except (OSError, http.client.HTTPException) as exc:
            self._release(conn)
            raise TransportError(f"{what} at {self._origin}: {_describe(exc)}") from None
        except TransportError:
            self._release(conn)
            raise
        return conn, resp

    def _connection(self) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        cafile = str(self._ca_path) if self._ca_path is not None else None
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot load the CA file {cafile}: {_describe(exc)}") from None
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=context
        )

    def _track(self, conn: http.client.HTTPConnection, what: str) -> None:
        """Make ``conn`` the one ``interrupt()`` aborts; refuse it once interrupted."""
        with self._lock:
            if self._interrupted:
                raise TransportError(f"{what}: stopped")
            self._conn = conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def _read_token(self) -> str | None:
        if self._token_path is None:
            return None
        try:
            token = self._token_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = _describe(exc) if isinstance(exc, OSError) else "not ASCII"
            raise TransportError(
                f"cannot read the token file {self._token_path}: {reason}"
            ) from None
        # http.client would put an invalid header value, the token, in its error.
        if not token or not all(33 <= ord(c) <= 126 for c in token):
            raise TransportError(
                f"the token file {self._token_path} is empty or holds "
                "characters a bearer token cannot have"
            )
        return token


def _describe(exc: BaseException) -> str:
    """An OS/HTTP error in a few words (never a body: those errors carry none)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _parse_json(data: bytes) -> Any:  # Any: the JSON edge, checked by the caller
    """The decoded document, or None; the decoder's error (which holds the whole
    document in ``.doc``) is never raised nor kept."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _read(resp: http.client.HTTPResponse, limit: int, what: str) -> bytes:
    try:
        body = resp.read(limit + 1)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TransportError(f"{what}: reading the answer failed: {_describe(exc)}") from None
    if len(body) > limit:
        raise ProtocolError(f"{what}: the answer is larger than {limit} bytes")
    return body


class _LineReader:
    """Lines of a chunked stream, telling its proper end (the terminating chunk:
    b"") from a cut connection (TransportError). ``HTTPResponse.readline`` cannot:
    its peek swallows the IncompleteRead of a cut stream and reports a clean end."""

    def __init__(self, resp: http.client.HTTPResponse, what: str) -> None:
        self._resp = resp
        self._what = what
        self._buffer = bytearray()

    def readline(self) -> bytes:
        """The next line; b"" once the server has ended the stream."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ProtocolError(f"{self._what}: an event is larger than {MAX_LINE_BYTES} bytes")
            try:
                data = self._resp.read1(65536)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise TransportError(f"{self._what}: the stream broke: {_describe(exc)}") from None
            if not data:
                end = len(self._buffer) - 1  # the end: whatever is left is the last line
                break
            self._buffer += data
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line


def _event(line: bytes, what: str) -> WatchEvent:
    doc = _parse_json(line)
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("type"), str)
        and isinstance(doc.get("object"), dict)
    ):
        raise ProtocolError(f"{what}: a line of the stream is not a watch event")
    if doc["type"] == "ERROR":
        raise _status_error(doc["object"], 500)
    return WatchEvent(doc["type"], doc["object"])


def _status_error(status: JsonObject, default_code: int) -> ApiError:
    """An ApiError from a ``Status`` object (its ``code``, ``reason``, ``message``)."""
    code = status.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else default_code
    reason = status.get("reason")
    message = status.get("message")
    reason = (
        reason if isinstance(reason, str) and reason else http.client.responses.get(code, "Error")
    )
    message = " ".join(message.split())[:_MESSAGE_CHARS] if isinstance(message, str) else ""
    error_class = GoneError if code == 410 else ApiError
    return error_class(code, reason, message)


def _api_error(resp: http.client.HTTPResponse) -> ApiError:
    """The error an HTTP answer other than 200 stands for (its body as a Status)."""
    try:
        body = resp.read(MAX_ERROR_BODY_BYTES)
    except (OSError, http.client.HTTPException, ValueError):
        body = b""
    doc = _parse_json(body)
    status = doc if isinstance(doc, dict) and doc.get("kind") == "Status" else {}
    return _status_error({**status, "code": resp.status}, resp.status)
