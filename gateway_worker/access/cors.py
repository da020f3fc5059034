"""CORS per ``server.cors``: preflight answers and the headers of actual responses.

Interface used by the app::

    cors = Cors(config.server.cors)
    response = cors.preflight(request.method, request.headers)   # before auth; None = go on
    extra = cors.response_headers(request.headers)               # added to every response

* ``preflight``: only an ``OPTIONS`` request carrying ``Origin`` and
  ``Access-Control-Request-Method`` is a preflight. Allowed origin and method → 204 with
  ``Access-Control-Allow-Origin/-Methods/-Headers/-Max-Age`` (and ``-Credentials`` when
  configured); otherwise 403 with a JSON ``{"error": ...}`` naming what was refused.
  ``None`` when CORS is disabled or the request is not a preflight.
* ``response_headers``: nothing for a preflight (the app may call it on every
  response; ``preflight`` already answered those). For a request with an allowed ``Origin``,
  ``Access-Control-Allow-Origin`` is the origin itself when the allow-list is specific or
  credentials are allowed (browsers refuse ``*`` with credentials), ``*`` otherwise;
  ``Vary: Origin`` whenever the answer depends on the origin; ``Expose-Headers`` lets
  scripts read ``Upstash-Sync-Token`` and ``ETag``. No headers for other origins: the
  browser then blocks the response, which is the point.
"""

from __future__ import annotations

import json

from gateway_worker.config import CorsConfig
from gateway_worker.exchange import Response

EXPOSED_HEADERS = "Upstash-Sync-Token, ETag"


class Cors:
    """CORS decisions for one configuration."""

    def __init__(self, config: CorsConfig) -> None:
        self.enabled = config.enabled
        self.any_origin = "*" in config.allowed_origins
        self.origins = frozenset(o for o in config.allowed_origins if o != "*")
        self.methods = list(dict.fromkeys(config.allowed_methods))
        self.allow_headers = ", ".join(config.allowed_headers)
        self.credentials = config.allow_credentials
        self.max_age = str(config.max_age_seconds)
        # Echo the origin (and vary on it) unless the answer is the same for everyone.
        self.echo_origin = not self.any_origin or self.credentials

    def origin_allowed(self, origin: str) -> bool:
        """Whether ``origin`` is in ``server.cors.allowed_origins`` (or it has ``*``)."""
        return self.any_origin or origin.rstrip("/") in self.origins

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        headers = [("Access-Control-Allow-Origin", origin if self.echo_origin else "*")]
        if self.echo_origin:
            headers.append(("Vary", "Origin"))
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def preflight(self, method: str, headers: dict[str, str]) -> Response | None:
        """The answer to a CORS preflight, or None when ``method``/``headers`` is not one."""
        if not self.enabled or method.upper() != "OPTIONS":
            return None
        origin = headers.get("origin")
        requested = headers.get("access-control-request-method")
        if not origin or not requested:
            return None
        if not self.origin_allowed(origin):
            return _forbidden(
                f"origin {origin!r} is not allowed by server.cors.allowed_origins",
                vary=self.echo_origin,
            )
        if requested.strip().upper() not in self.methods:
            return _forbidden(
                f"method {requested.strip()!r} is not allowed by server.cors.allowed_methods",
                vary=self.echo_origin,
            )
        out = self._origin_headers(origin)
        out += [
            ("Access-Control-Allow-Methods", ", ".join(self.methods)),
            ("Access-Control-Allow-Headers", self.allow_headers),
            ("Access-Control-Max-Age", self.max_age),
        ]
        return Response(status=204, body=b"", content_type="text/plain", headers=out)

    def response_headers(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        """CORS headers to add to an actual (non-preflight) response."""
        if not self.enabled or "access-control-request-method" in headers:
            return []  # disabled, or a preflight: preflight() wrote its own headers
        origin = headers.get("origin")
        if not origin:
            return [("Vary", "Origin")] if self.echo_origin else []
        if not self.origin_allowed(origin):
            return [("Vary", "Origin")] if self.echo_origin else []
        return [
            *self._origin_headers(origin),
            ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
        ]


def _forbidden(message: str, vary: bool) -> Response:
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    headers = [("Vary", "Origin")] if vary else []
    return Response(status=403, body=body, content_type="application/json", headers=headers)
