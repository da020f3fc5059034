"""What the throughput benchmark measures: one :class:`Target` per row.

Rows, for Webdis and for every gateway engine under test (``op`` names the load; a
gateway row is compared with the Webdis row of the same ``op``):

* ``GET`` / ``SET``: one 32-byte value, one request at a time per connection;
* ``GETx16``: 16 GETs per write, HTTP/1.1 pipelining (wrk counts responses);
* ``PIPE100``: 100 ``GET bench:key`` per request, Upstash ``POST /pipeline``. Webdis has
  no pipeline endpoint, so its row sends the same 100 commands the way a Webdis client
  would batch them: 100 ``GET /GET/bench:key`` written at once (HTTP/1.1 pipelining);
  compare commands/s and MB/s, not req/s;
* ``GET1MB``: a 1 MB value (JSON-encoded by both), fewer connections (:data:`LARGE_CONNECTIONS`);
* ``GET+auth`` / ``GET+ratelimit``: the Upstash GET through a gateway with an API key
  required (``Authorization: Bearer``) or the rate limiter on (a limit it never reaches);
  their cost is read against the same engine's plain Upstash ``GET``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.throughput_checks import pipeline_body
from benchmarks.throughput_wrk import pipelined_script

VALUE = "v" * 32
LARGE_VALUE = "L" * 1_000_000
PIPELINE_DEPTH = 16
PIPELINE_COMMANDS = 100
LARGE_CONNECTIONS = 8

#: Settings of the gateways whose cost is measured against the plain one.
RATE_LIMIT_SETS = {
    "auth.rate_limiting.enabled": "true",
    # 10 million requests per second, a million at once: never reached here.
    "auth.rate_limiting.requests_per_minute": "600000000",
    "auth.rate_limiting.burst_size": "1000000",
}


def auth_sets(api_key: str) -> dict[str, str]:
    """Settings turning auth on with one API key (a throwaway, made per run)."""
    keys = json.dumps([{"name": "bench", "key": api_key, "policy": "all_but_dangerous"}])
    return {"auth.enabled": "true", "auth.api_keys": keys}


@dataclass(frozen=True)
class Target:
    """One row: a load (``op``) on one server (``server``: ``webdis`` or a gateway's key)."""

    name: str
    op: str
    server: str
    base: str  # http://127.0.0.1:port
    path: str
    method: str = "GET"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    depth: int = 1  # requests per write (HTTP/1.1 pipelining)
    commands: int = 1  # Redis commands per counted request
    connections: int | None = None  # None: the run's --connections
    baseline: str | None = None  # the row this one's cost is measured against

    @property
    def url(self) -> str:
        return self.base + self.path

    @property
    def needs_script(self) -> bool:
        return self.depth > 1 or self.body is not None or bool(self.headers)

    def script(self) -> str:
        """The wrk Lua script of this load."""
        return pipelined_script(self.path, self.depth, self.method, self.body, self.headers)

    def write_script(self, workdir: Path) -> str | None:
        """Write :meth:`script` under ``workdir`` if the load needs one; its path."""
        if not self.needs_script:
            return None
        path = workdir / (self.name.replace(" ", "_").replace("+", "_") + ".lua")
        path.write_text(self.script())
        return str(path)


def webdis_targets(base: str) -> list[Target]:
    """The reference rows, on Webdis."""
    one = "/GET/bench:key"
    return [
        Target("webdis GET", "GET", "webdis", base, one),
        Target("webdis SET", "SET", "webdis", base, f"/SET/bench:set/{VALUE}"),
        Target("webdis GETx16", "GETx16", "webdis", base, one, depth=PIPELINE_DEPTH),
        Target("webdis PIPE100", "PIPE100", "webdis", base, one, depth=PIPELINE_COMMANDS),
        Target(
            "webdis GET1MB", "GET1MB", "webdis", base, "/GET/bench:big",
            connections=LARGE_CONNECTIONS,
        ),
    ]  # fmt: skip


def gateway_targets(label: str, base: str) -> list[Target]:
    """The rows of one plain gateway (both protocols)."""
    body = pipeline_body(["GET", "bench:key"], PIPELINE_COMMANDS)
    json_type = {"Content-Type": "application/json"}
    return [
        Target(f"{label} webdis GET", "GET", label, base, "/webdis/GET/bench:key"),
        Target(f"{label} webdis SET", "SET", label, base, f"/webdis/SET/bench:set/{VALUE}"),
        Target(f"{label} upstash GET", "GET", label, base, "/get/bench:key"),
        Target(f"{label} upstash SET", "SET", label, base, f"/set/bench:set/{VALUE}"),
        Target(
            f"{label} webdis GETx16", "GETx16", label, base, "/webdis/GET/bench:key",
            depth=PIPELINE_DEPTH,
        ),
        Target(
            f"{label} upstash GETx16", "GETx16", label, base, "/get/bench:key",
            depth=PIPELINE_DEPTH,
        ),
        Target(
            f"{label} upstash PIPE100", "PIPE100", label, base, "/pipeline", method="POST",
            body=body, headers=json_type, commands=PIPELINE_COMMANDS,
        ),
        Target(
            f"{label} webdis GET1MB", "GET1MB", label, base, "/webdis/GET/bench:big",
            connections=LARGE_CONNECTIONS,
        ),
        Target(
            f"{label} upstash GET1MB", "GET1MB", label, base, "/get/bench:big",
            connections=LARGE_CONNECTIONS,
        ),
    ]  # fmt: skip


def cost_targets(label: str, auth_base: str, limited_base: str, api_key: str) -> list[Target]:
    """The auth-on and rate-limit-on rows of one engine (each on its own gateway)."""
    plain = f"{label} upstash GET"
    bearer = {"Authorization": f"Bearer {api_key}"}
    return [
        Target(
            f"{label} upstash GET+auth", "GET+auth", f"{label} auth", auth_base,
            "/get/bench:key", headers=bearer, baseline=plain,
        ),
        Target(
            f"{label} upstash GET+ratelimit", "GET+ratelimit", f"{label} ratelimit",
            limited_base, "/get/bench:key", baseline=plain,
        ),
    ]  # fmt: skip


def reference(target: Target) -> str:
    """The Webdis row a row is compared with (the plain GET for the cost rows)."""
    return f"webdis {target.op.split('+')[0]}"
