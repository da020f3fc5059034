"""What the scenarios of `faults.py` share: the canaries, the persistent Redis, a request on
its own connection, the documented 5xx, and the verdict of one row.

* **Canaries**: distinct random secrets, one per way a secret reaches the gateway
  (``Canaries.ROLES``). A leak is any of their random parts in any output.
* **SuiteRedis**: one valkey for the whole run, on a fixed port, with a password (the
  ``redis_password_env`` canary) and ``appendfsync always``, so that a restart keeps
  every write it acknowledged: a write acknowledged by the gateway and missing from the
  counter afterwards was lost by the gateway, not by Redis.
* The gateway planted with every canary: ``benchmarks.fault_gateway.FaultGateway``.
* **Row**: one scenario's figures and the targets it missed (``problems``).
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from supervisor.embedded_redis import EmbeddedRedis

HANG_SECONDS = 2.0
RECOVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Canaries:
    """One random secret per role; ``hits(text)`` names the roles whose secret appears."""

    ROLES = (
        "jwt_secret_file",  # the secrets dir: auth.jwt_secret
        "redis_password_env",  # env REDIS_GATEWAY_REDIS__DEFAULT_PASSWORD (Redis requirepass)
        "previous_secret_set",  # --set auth.jwt_previous_secrets=[...]
        "api_key_file",  # auth.api_keys[0].key in the main file (the admin key)
        "api_key_keyfile",  # auth.api_keys[1].key_file
        "url_password",  # redis://:<pw>@ in a reload whose workers cannot boot
        "unknown_key_value",  # values of misspelt secret keys in invalid reloads
    )
    values: Mapping[str, str]

    @classmethod
    def fresh(cls) -> Canaries:
        return cls({role: f"cnry-{role}-{secrets.token_hex(10)}" for role in cls.ROLES})

    def __getitem__(self, role: str) -> str:
        return self.values[role]

    def hits(self, text: str | bytes) -> list[str]:
        """Roles whose random part is in ``text`` (a prefix of the value may be masked)."""
        data = text if isinstance(text, str) else text.decode(errors="replace")
        return [role for role, value in self.values.items() if value.rsplit("-", 1)[1] in data]


class SuiteRedis:
    """The run's valkey: password, every write fsynced; ``restart`` keeps the data."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.server = EmbeddedRedis(
            extra_args=("--appendonly", "yes", "--appendfsync", "always", "--requirepass", password)
        )
        self.server.start()
        self.url = self.server.url  # no password in it: that comes from the env

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, password=self.password, socket_timeout=5)

    def stop(self, keep_data: bool = True) -> None:
        self.server.stop(keep_data=keep_data)

    def start(self) -> None:
        self.server.start()


#: Python's traceback header (a line of its own), or the JSON log's field for an
#: exception's traceback (a key: unescaped quotes). Not the bare words anywhere: fuzzed
#: configs use this module's string constants (hypothesis draws from them), and an error
#: rightly quotes a value "Traceback" or '"exception":'.
TRACEBACK = re.compile(r'^\s*Traceback \(most recent call last\)|(?<!\\)"exception": ')


def is_traceback(line: str) -> bool:
    return TRACEBACK.search(line) is not None


def traceback_lines(text: str) -> int:
    return sum(map(is_traceback, text.splitlines()))


def http(
    port: int, path: str, headers: Mapping[str, str] | None = None, method: str = "GET",
    body: bytes = b"", timeout: float = 5.0,
) -> tuple[int, bytes]:  # fmt: skip
    """One request on a new connection: (status, body); (0, b"") if none came."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                received += chunk
    except OSError:
        pass
    head, _, payload = received.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, payload


def classify_5xx(status: int, body: str) -> str:
    """Which documented 5xx this is (docs/api.md), or "other"."""
    if status == 503 and "no worker is ready to serve" in body:
        return "no_worker"
    if status == 503 and "Redis unavailable" in body:
        return "redis_unavailable"
    if status == 504 and "request_timeout_seconds" in body:
        return "timeout"
    return "other"


@dataclass
class Row:
    """One scenario's figures; ``problems`` lists every target it missed."""

    scenario: str
    requests: int = 0
    failed: int = 0
    writes_acked: int = 0
    writes_lost: int = 0
    unacked_applied: int = 0
    unanswered_writes: int = 0
    recovery_s: float | None = None
    longest_wait_s: float = 0.0
    tracebacks: int = 0
    leaks: int = 0
    left_behind: int = 0
    documented_5xx: int = 0
    unexpected_5xx: int = 0
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def scan(
        self, texts: Mapping[str, str], canaries: Iterable[Canaries], tracebacks: bool = True
    ) -> None:
        """Count tracebacks and canary hits in ``texts`` (name -> text). Not tracebacks
        in texts that rightly echo what they were given (config errors quoting fuzzed
        values): an exception there is caught where it is raised."""
        for name, text in texts.items():
            if tracebacks and (n := traceback_lines(text)):
                self.tracebacks += n
                lines = text.splitlines()
                first = next(filter(is_traceback, lines))
                self.problems.append(f"traceback in {name}: {first[:200]}")
            for canary in canaries:
                for role in canary.hits(text):
                    self.leaks += 1
                    self.problems.append(f"secret {role} found in {name}")

    def add_5xx(self, replies: Iterable[tuple[int, str]], allowed: set[str]) -> None:
        for status, body in replies:
            kind = classify_5xx(status, body)
            if kind in allowed:
                self.documented_5xx += 1
            else:
                self.unexpected_5xx += 1
                if self.unexpected_5xx <= 5:
                    self.problems.append(f"unexpected {status}: {body[:160]!r}")

    def left(self, what: list[str]) -> None:
        self.left_behind += len(what)
        self.problems += [f"left behind: {w}" for w in what]

    def judge(self, recovery_target: float | None = RECOVERY_SECONDS) -> None:
        """Add the general targets' misses to ``problems``."""
        if self.writes_lost:
            self.problems.append(f"{self.writes_lost} acknowledged writes lost")
        if self.unacked_applied > self.unanswered_writes:
            self.problems.append(
                f"{self.unacked_applied} writes applied without a reply, more than the "
                f"{self.unanswered_writes} that got none"
            )
        if self.longest_wait_s > HANG_SECONDS:
            self.problems.append(f"a request waited {self.longest_wait_s:.2f} s (hang)")
        if recovery_target is not None and (
            self.recovery_s is None or self.recovery_s > recovery_target
        ):
            self.problems.append(f"recovery {self.recovery_s} s > {recovery_target} s")


def rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def poll(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.01) -> float:
    """Poll every ``every`` s until ``predicate()``; the time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
