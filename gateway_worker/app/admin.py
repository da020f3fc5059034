"""``/admin/*``: the operational endpoints for admins (API.md §3).

Reached only when ``features.admin_endpoints`` is on and the principal is an admin
(the app checks both). Everything but the worker's own config is answered by the
supervisor over its control socket (``supervisor.control_socket``, set by the supervisor
in the config it sends; ``gateway_worker.control_socket``). Without that socket (a worker
started alone) those answer 503.

* ``GET /admin/config``: the running config, redacted, with ``ETag: "<hash>"`` (the
  supervisor's config hash; ``If-None-Match`` → 304) and, with ``?sources=1``, the value
  and source of every key.
* ``GET /admin/status``: the supervisor's status.
* ``POST /admin/reload``: reload and wait for the outcome (200, or 409 when it failed);
  ``If-Match: "<hash>"``: 412 unless that is the running config.
* ``POST /admin/config/plan``: the body is a candidate main config file (TOML, YAML or
  JSON, by ``Content-Type``), validated as if it replaced the main file with every other
  layer as now; the answer lists every problem and the diff, and nothing is applied
  (200 valid, 422 invalid).
"""

from __future__ import annotations

import os

from gateway_worker.config import Config, config_hash, dump_redacted
from gateway_worker.control_socket import ControlError, request_async
from gateway_worker.exchange import Request, Response
from gateway_worker.protocols.json_bodies import error_response, json_bytes
from gateway_worker.serving.drain import DrainPolicy


class Admin:
    """Handles ``/admin/...`` paths (``request.path`` relative to ``/admin``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.socket_path = config.supervisor.control_socket
        self.hash = config_hash(config)
        # A reload waits for new workers to be ready and old ones to drain (at most
        # until the supervisor kills them).
        self.reload_timeout = (
            config.server.reload_readiness_timeout_seconds
            + DrainPolicy.from_config(config.server).kill_after_seconds
            + 5.0
        )

    async def handle(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/config"):
            return await self._config(request)
        if route == ("GET", "/status"):
            return await self._forward({"cmd": "status"}, 5.0)
        if route == ("POST", "/reload"):
            return await self._reload(request)
        if route == ("POST", "/config/plan"):
            return await self._plan(request)
        known = {"/config": "GET", "/status": "GET", "/reload": "POST", "/config/plan": "POST"}
        if route[1] in known:
            allow = known[route[1]]
            return error_response(
                405, f"/admin{route[1]} needs {allow}, not {request.method}", [("allow", allow)]
            )
        return error_response(404, f"no admin endpoint /admin{request.path}")

    async def _config(self, request: Request) -> Response:
        body: dict[str, object] = {
            "profile": self.config.profile,
            "hash": self.hash,
            "config": dump_redacted(self.config),
        }
        # The supervisor knows the version, its own hash and which layer set each key;
        # a worker started alone reports the hash of the config it runs.
        reply = await self._ask({"cmd": "status"}, 5.0)
        status = reply.get("status", reply) if isinstance(reply, dict) else None
        if isinstance(status, dict):
            for key in ("version", "hash", "provenance", "generation"):
                if key in status:
                    body[key] = status[key]
        etag = f'"{body["hash"]}"'
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", headers=[("etag", etag)])
        if ("sources", "1") in request.query:
            provenance = body.get("provenance")
            body["sources"] = keyed_sources(dump_redacted(self.config), provenance)
        return Response(200, json_bytes(body), headers=[("etag", etag)])

    async def _reload(self, request: Request) -> Response:
        command: dict[str, object] = {"cmd": "reload", "via": "admin API"}
        if_match = request.headers.get("if-match")
        if if_match is not None:
            command["if_match"] = if_match.strip().removeprefix("W/").strip('"')
        reply = await self._ask(command, self.reload_timeout)
        if isinstance(reply, dict) and reply.get("precondition_failed"):
            return Response(412, json_bytes(reply), headers=[("etag", f'"{reply.get("hash")}"')])
        return self._response(reply)

    async def _plan(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = PLAN_FORMATS.get(media)
        if fmt is None:
            known = ", ".join(sorted(PLAN_FORMATS))
            return error_response(415, f"a plan needs a config file of type {known}, not {media!r}")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error_response(400, f"the candidate is not UTF-8 (invalid byte at {exc.start})")
        reply = await self._ask({"cmd": "plan", "text": text, "format": fmt}, 30.0)
        if isinstance(reply, dict) and reply.get("valid") is False:
            return Response(422, json_bytes(reply))
        return self._response(reply)

    async def _forward(self, command: dict[str, object], timeout: float) -> Response:
        return self._response(await self._ask(command, timeout))

    @staticmethod
    def _response(reply: dict[str, object] | str) -> Response:
        if isinstance(reply, str):
            return error_response(503, reply)
        ok = reply.get("ok", True) is not False
        return Response(200 if ok else 409, json_bytes(reply))

    async def _ask(self, command: dict[str, object], timeout: float) -> dict[str, object] | str:
        """The supervisor's reply, or a message saying why there is none."""
        path = self.socket_path
        if not path or not os.path.exists(path):
            return "supervisor control socket not available (worker not supervised?)"
        try:
            return await request_async(path, command, timeout)
        except ControlError as exc:
            return f"supervisor did not answer {command['cmd']!r}: {exc}"


#: Content types of a candidate config (``POST /admin/config/plan``).
PLAN_FORMATS = {
    "application/toml": "toml",
    "text/toml": "toml",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "application/json": "json",
}


def keyed_sources(tree: dict[str, object], provenance: object) -> dict[str, object]:
    """Dotted key -> {"value", "source"} (lists are leaves), for ``?sources=1``."""
    sources = provenance if isinstance(provenance, dict) else {}
    flat: dict[str, object] = {}
    stack: list[tuple[str, object]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, dict) and node:
            stack.extend((f"{prefix}.{k}" if prefix else str(k), v) for k, v in node.items())
        else:
            flat[prefix] = {"value": node, "source": sources.get(prefix, "default")}
    return dict(sorted(flat.items()))
