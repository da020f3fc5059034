"""The values of one exchange between the app and a protocol handler: who is calling
(``Principal``), what they asked (``Request``), what the handler answers (``Response``),
and the command check the handler must ask (``CommandGuard``). Protocol-neutral: no
HTTP parsing, no ASGI here.

``gateway_worker.app`` turns an ASGI scope into a ``Request`` (with ``path`` relative
to the protocol's mount prefix), runs the cross-cutting steps (CORS, auth, rate limit,
limits), then calls the protocol handler, which returns a ``Response``. Handlers never
see ASGI and never write to the socket themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from gateway_worker.streams.body import StreamBody

PolicyName = Literal["all", "all_but_dangerous", "safe", "read_only"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key, a JWT subject, or anonymous (auth disabled)."""

    name: str  # API key name, "jwt:<sub>", or "anonymous"; safe for logs/metrics
    policy: PolicyName = "all_but_dangerous"
    key_prefix: str | None = None
    admin: bool = False
    rate_key: str = ""  # what rate limiting counts against (credential name or client IP)


_ANONYMOUS = Principal("anonymous")


class Request(NamedTuple):
    """One HTTP request as handlers see it (immutable; a NamedTuple because one is made
    per request: a third of a frozen dataclass's cost, ``benchmarks/hot_path.py``)."""

    method: str  # after X-HTTP-Method-Override, upper-case
    path: str  # percent-encoded, relative to the mount prefix, starts with "/"
    query: list[tuple[str, str]]  # decoded, in order, repeated keys kept
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    client_ip: str
    principal: Principal = _ANONYMOUS


@dataclass
class Response:
    """What a handler answers; ``stream`` set means a streamed body (``streams.body``)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: StreamBody | None = None
    #: Upper-case command name (``PIPELINE`` or ``MULTI-EXEC`` for a batch), for
    #: metrics and the access log; the app bounds it to known names. None: not a command.
    command: str | None = None
    #: How many commands a batch (pipeline, transaction) held; None: not a batch.
    batch_size: int | None = None


class CommandGuard(Protocol):
    """Checks one command (``args[0]`` is the name) for the request's principal.

    ``db`` is the database the command runs in when the request names one (Webdis
    ``/DB/CMD``), None for the gateway's own ``redis.db``. Returns None when allowed,
    or the refusal reason (the handler answers 403).
    """

    def __call__(self, args: list[bytes], db: int | None = None) -> str | None: ...
