"""``/admin/*``: the operational endpoints for admins (API.md §3).

Reached only when ``features.admin_endpoints`` is on and the principal is an admin
(the app checks both). Status and reload are answered by the supervisor over its
control socket (``supervisor.control_socket``, set by the supervisor in the config it
sends): one JSON line out (``{"cmd": "status"}`` / ``{"cmd": "reload"}``), one JSON line
back. Without that socket (a worker started alone) they answer 503.
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
            body: dict[str, object] = {
                "profile": self.config.profile,
                "hash": self.hash,
                "config": dump_redacted(self.config),
            }
            # The supervisor knows the version, its own hash and which layer set each
            # key; a worker started alone reports the hash of the config it runs.
            reply = await self._ask("status", 5.0)
            status = reply.get("status", reply) if isinstance(reply, dict) else None
            if isinstance(status, dict):
                for key in ("version", "hash", "provenance", "generation"):
                    if key in status:
                        body[key] = status[key]
            return Response(200, json_bytes(body))
        if route == ("GET", "/status"):
            return await self._forward("status", 5.0)
        if route == ("POST", "/reload"):
            return await self._forward("reload", self.reload_timeout)
        known = {"/config": "GET", "/status": "GET", "/reload": "POST"}
        if route[1] in known:
            allow = known[route[1]]
            return error_response(
                405, f"/admin{route[1]} needs {allow}, not {request.method}", [("allow", allow)]
            )
        return error_response(404, f"no admin endpoint /admin{request.path}")

    async def _forward(self, cmd: str, timeout: float) -> Response:
        reply = await self._ask(cmd, timeout)
        if isinstance(reply, str):
            return error_response(503, reply)
        ok = reply.get("ok", True) is not False
        return Response(200 if ok else 409, json_bytes(reply))

    async def _ask(self, cmd: str, timeout: float) -> dict[str, object] | str:
        """The supervisor's reply, or a message saying why there is none."""
        path = self.socket_path
        if not path or not os.path.exists(path):
            return "supervisor control socket not available (worker not supervised?)"
        try:
            return await request_async(path, {"cmd": cmd}, timeout)
        except ControlError as exc:
            return f"supervisor did not answer {cmd!r}: {exc}"
