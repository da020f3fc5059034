"""A local fake of the Kubernetes API, for the ConfigMap/Secret source's tests.

No cluster exists where these tests run. This server speaks the JSON shapes of the
real API for the calls the source makes (``/api/v1/namespaces/{ns}/{configmaps|
secrets}``), on 127.0.0.1 with a port picked at run time:

- list (``fieldSelector=metadata.name=<name>``): a ``ConfigMapList``/``SecretList``
  with ``metadata.resourceVersion`` (the store's current version, as for a real
  consistent list) and the matching items (none when the object is absent: the real
  API answers an empty list there, not 404);
- get of one object: the object, or a 404 ``Status``;
- watch (``watch=1&resourceVersion=N``): 200, chunked, one JSON event per line, kept
  open until ``timeoutSeconds``: first the stored events after N, then each change as
  it happens; ``BOOKMARK`` events (only ``metadata.resourceVersion``) when the client
  allows them; an ``ERROR`` event with a ``Status`` of code 410 (``Expired``) when N is
  older than the compacted history (``compact()``), or on demand (``expire_streams()``);
- every request needs ``Authorization: Bearer <token>`` (401 ``Status`` otherwise);
  errors are ``Status`` objects (``kind``, ``status: Failure``, ``reason``, ``code``).

Test controls: ``put_configmap``/``put_secret``/``delete`` (each bumps the one global
resourceVersion, like etcd's revision), ``bookmark()``, ``end_streams()`` (a clean end,
as after the server's timeout), ``break_streams()`` (the connection is cut mid-stream),
``fail_next(status, count, verb)``, ``go_down()``/``come_back()`` (the port refuses
connections in between), ``token`` (change the accepted token), and ``seen`` (every
request: verb, object, query parameters, the bearer token it carried).
"""

from __future__ import annotations

import base64
import json
import queue
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JsonObject = dict[str, Any]
KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    verb: str  # "list", "watch", "get" or "other"
    plural: str
    namespace: str
    name: str | None
    params: dict[str, str]
    token: str | None


@dataclass
class _Stream:
    plural: str
    namespace: str
    name: str | None
    bookmarks: bool
    commands: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)

    def matches(self, plural: str, namespace: str, name: str) -> bool:
        return (plural, namespace) == (self.plural, self.namespace) and self.name in (None, name)


def status(code: int, reason: str, message: str) -> JsonObject:
    """A ``Status`` object as the API server sends with errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubeApi:
    """The fake API server; use as a context manager or call start()/stop()."""

    def __init__(self, token: str | None = "token-0", *, tls: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.tls = tls
        self.seen: list[Seen] = []
        self._cond = threading.Condition()
        self._objects: dict[tuple[str, str, str], JsonObject] = {}
        self._history: list[tuple[int, str, str, str, str, JsonObject]] = []
        self._version = 100
        self._compacted = 0
        self._streams: list[_Stream] = []
        self._failures: list[tuple[str | None, str | None, int]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeKubeApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen (on the port used before, after go_down())."""
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        httpd.api = self  # type: ignore[attr-defined]
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            name="fake-kube-api",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Cut every stream and stop listening."""
        self.break_streams()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)

    go_down = stop
    come_back = start

    def put_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str] | None = None,
        binary_data: Mapping[str, bytes] | None = None,
    ) -> str:
        """Create or replace a ConfigMap; returns its new resourceVersion."""
        body: JsonObject = {}
        if data:
            body["data"] = dict(data)
        if binary_data:
            body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary_data.items()}
        return self._put("configmaps", namespace, name, body)

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        *,
        raw: Mapping[str, str] | None = None,
    ) -> str:
        """Create or replace an Opaque Secret (``raw``: data values sent as given)."""
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        body: JsonObject = {"type": "Opaque", "data": {**encoded, **(raw or {})}}
        return self._put("secrets", namespace, name, body)

    def delete(self, plural: str, namespace: str, name: str) -> str:
        with self._cond:
            obj = self._objects.pop((plural, namespace, name))
            return self._record(plural, namespace, name, "DELETED", obj)

    def compact(self) -> None:
        """Other writes in the cluster move the version on, then the history is
        compacted: a watch from any version handed out so far gets 410."""
        with self._cond:
            self._version += 10
            self._compacted = self._version
            self._history.clear()

    def bookmark(self) -> str:
        """Send a BOOKMARK at the current version to every stream that allows them."""
        with self._cond:
            version = str(self._version)
            for stream in self._streams:
                if stream.bookmarks:
                    obj = {
                        "kind": KINDS[stream.plural],
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": version},
                    }
                    stream.commands.put(("send", _line({"type": "BOOKMARK", "object": obj})))
            return version

    def expire_streams(self) -> None:
        """ERROR 410 (Expired) on every open stream, then end it."""
        event = {
            "type": "ERROR",
            "object": status(410, "Expired", f"too old resource version: {self._compacted}"),
        }
        self._to_streams(("send", _line(event)), ("end", b""))

    def send_raw(self, line: bytes) -> None:
        """Send ``line`` as is on every open stream."""
        self._to_streams(("send", line))

    def end_streams(self) -> None:
        """End every open stream cleanly (terminating chunk), as the server's timeout."""
        self._to_streams(("end", b""))

    def break_streams(self) -> None:
        """Cut every open stream's connection without the terminating chunk."""
        self._to_streams(("break", b""))

    def fail_next(
        self, code: int, count: int = 1, verb: str | None = None, plural: str | None = None
    ) -> None:
        """Answer the next ``count`` requests (of ``verb`` on ``plural``, or any) with
        ``code``."""
        with self._cond:
            self._failures.extend([(verb, plural, code)] * count)

    def open_streams(self, plural: str | None = None) -> int:
        with self._cond:
            return sum(1 for s in self._streams if plural in (None, s.plural))

    def requests(self, verb: str, plural: str | None = None) -> list[Seen]:
        with self._cond:
            return [s for s in self.seen if s.verb == verb and plural in (None, s.plural)]

    def _put(self, plural: str, namespace: str, name: str, body: JsonObject) -> str:
        with self._cond:
            old = self._objects.get((plural, namespace, name))
            metadata = {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{plural}/{namespace}/{name}")),
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            obj = {"kind": KINDS[plural], "apiVersion": "v1", "metadata": metadata, **body}
            return self._record(
                plural, namespace, name, "MODIFIED" if old is not None else "ADDED", obj
            )

    def _record(self, plural: str, namespace: str, name: str, kind: str, obj: JsonObject) -> str:
        """Store a change at the next resourceVersion and send it to the streams."""
        self._version += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._version)}}
        if kind != "DELETED":
            self._objects[(plural, namespace, name)] = obj
        self._history.append((self._version, plural, namespace, name, kind, obj))
        line = _line({"type": kind, "object": obj})
        for stream in self._streams:
            if stream.matches(plural, namespace, name):
                stream.commands.put(("send", line))
        self._cond.notify_all()
        return str(self._version)

    def _to_streams(self, *commands: tuple[str, bytes]) -> None:
        with self._cond:
            for stream in self._streams:
                for command in commands:
                    stream.commands.put(command)


def _line(doc: JsonObject) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _field_name(params: Mapping[str, str]) -> str | None:
    selector = params.get("fieldSelector", "")
    return (
        selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") else None
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    @property
    def api(self) -> FakeKubeApi:
        return self.server.api  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on ``seen``."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        route = parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (5, 6)
        plural, namespace = (parts[4], parts[3]) if route else ("", "")
        name = parts[5] if route and len(parts) == 6 else None
        verb = (
            "other"
            if not route or plural not in KINDS
            else "get"
            if name
            else "watch"
            if params.get("watch") in ("1", "true")
            else "list"
        )
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        api = self.api
        with api._cond:
            failure = next(
                (
                    i
                    for i, (v, p, _) in enumerate(api._failures)
                    if v in (None, verb) and p in (None, plural)
                ),
                None,
            )
            code = api._failures.pop(failure)[2] if failure is not None else None
            authorized = api.token is None or token == api.token
            opened = (
                self._open_stream(plural, namespace, _field_name(params), params)
                if verb == "watch" and authorized and code is None
                else None
            )
            # Recorded last: once a watch shows in `seen`, its stream is registered
            # (the tests synchronise on that).
            api.seen.append(
                Seen(verb, plural, namespace, name or _field_name(params), params, token)
            )
        if not authorized:
            self._json(401, status(401, "Unauthorized", "Unauthorized"))
        elif code is not None:
            reason = {404: "NotFound", 410: "Gone", 403: "Forbidden"}.get(code, "InternalError")
            self._json(code, status(code, reason, f"injected failure {code}"))
        elif verb == "other":
            self._json(
                404, status(404, "NotFound", "the server could not find the requested resource")
            )
        elif verb == "get":
            self._get(plural, namespace, name or "")
        elif verb == "list":
            self._list(plural, namespace, _field_name(params))
        elif opened is not None:
            self._watch(*opened, params)

    def _json(self, code: int, doc: JsonObject) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _get(self, plural: str, namespace: str, name: str) -> None:
        with self.api._cond:
            obj = self.api._objects.get((plural, namespace, name))
        if obj is None:
            self._json(404, status(404, "NotFound", f'{plural} "{name}" not found'))
        else:
            self._json(200, obj)

    def _list(self, plural: str, namespace: str, name: str | None) -> None:
        with self.api._cond:
            items = [
                # List items carry no kind/apiVersion, as in the real API.
                {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                for (p, ns, n), obj in sorted(self.api._objects.items())
                if (p, ns) == (plural, namespace) and name in (None, n)
            ]
            version = str(self.api._version)
        self._json(
            200,
            {
                "kind": f"{KINDS[plural]}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _open_stream(
        self, plural: str, namespace: str, name: str | None, params: Mapping[str, str]
    ) -> tuple[_Stream | None, int]:
        """Register a stream, its backlog queued (called with the lock held); None
        when the version asked for is older than the history kept."""
        api = self.api
        start = int(params.get("resourceVersion") or api._version)
        if start < api._compacted:
            return None, start
        stream = _Stream(
            plural, namespace, name, params.get("allowWatchBookmarks") in ("1", "true")
        )
        for version, p, ns, n, kind, obj in api._history:
            if version > start and stream.matches(p, ns, n):
                stream.commands.put(("send", _line({"type": kind, "object": obj})))
        api._streams.append(stream)
        return stream, start

    def _watch(self, stream: _Stream | None, start: int, params: Mapping[str, str]) -> None:
        api = self.api
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            if stream is None:
                self._chunk(
                    _line(
                        {
                            "type": "ERROR",
                            "object": status(
                                410,
                                "Expired",
                                f"too old resource version: {start} ({api._compacted})",
                            ),
                        }
                    )
                )
                self._chunk(b"")
                return
            self._serve_stream(stream, float(params.get("timeoutSeconds") or 1800))
        finally:
            if stream is not None:
                with api._cond:
                    api._streams.remove(stream)

    def _serve_stream(self, stream: _Stream, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        send: Callable[[bytes], None] = self._chunk
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    command, data = stream.commands.get(timeout=remaining)
                except queue.Empty:
                    break
                if command == "break":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if command == "end":
                    break
                send(data)
            send(b"")
        except OSError:
            pass  # the client went away

    def _chunk(self, data: bytes) -> None:
        """One chunk (the empty one ends the stream)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
