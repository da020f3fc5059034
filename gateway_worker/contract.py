"""The supervisor ↔ worker contract, written down in one place.

A worker is a fresh interpreter started by the supervisor as::

    python -m gateway_worker --supervised --listen-fd N [--listen-fd M ...]
        --config-fd C --status-fd S

with those fds inherited (``pass_fds``); nothing secret is in argv or the environment.

Config pipe (supervisor → worker, fd C)
    The supervisor writes ONE line, a ``ConfigMessage``: ``{"generation": G, "slot":
    N, "config": <config.dump_with_secrets()>}`` (secrets in clear, this pipe is
    private to the two processes; generation and slot name the worker in its logs),
    then keeps the
    write end open for the worker's whole life. EOF on it means the supervisor is
    gone: the worker then drains and exits by itself (no orphans, even after
    SIGKILL of the supervisor). The line may come long after the start: a worker
    imports its modules *before* reading it, so the supervisor keeps pre-imported
    "standby" workers and sends the line only when it needs one (EOF before the
    line: exit ``ORPHANED`` quietly).

Status pipe (worker → supervisor, fd S)
    Newline-delimited JSON objects, each with a "type":

    * ``{"type": "ready", "pid": P}`` once the app started and Redis answered PING.
    * ``{"type": "heartbeat", "pid": P, "t": <monotonic>}`` every
      ``supervisor.heartbeat_interval_seconds``, sent *from the event loop*.
    * ``{"type": "fatal", "pid": P, "error": "...", "code": <exit code>}`` just before
      a worker that cannot boot exits; ``error`` never contains a secret.
    * ``{"type": "draining", "pid": P}`` when it stopped accepting after SIGTERM.

    EOF on the status pipe means the worker is gone. The worker's end is
    non-blocking: if the supervisor stops reading, heartbeats are dropped rather
    than blocking the worker's event loop.

Signals (supervisor → worker)
    SIGTERM: graceful drain (stop accepting; in-flight requests finish; keep-alive
    connections get ``Connection: close`` on their next response; idle ones are closed
    after the idle grace of ``gateway_worker.serving.drain.DrainPolicy``) then exit 0.
    SIGQUIT/SIGINT: fast exit. SIGUSR1: reopen logs. Workers run in their own session
    (terminal signals reach only the supervisor).

Exit codes: see ``ExitCode``.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Literal, TypedDict

MessageType = Literal["ready", "heartbeat", "fatal", "draining"]


class ExitCode(enum.IntEnum):
    """Worker exit codes; the supervisor decides from them whether to restart."""

    OK = 0
    #: Unexpected crash (Python's default for an uncaught exception).
    CRASH = 1
    #: The config received over the pipe is invalid: restarting will not help.
    CONFIG_ERROR = 3
    #: The app could not start (e.g. Redis unreachable at boot, bad TLS files).
    BOOT_ERROR = 4
    #: The supervisor went away (EOF on the config pipe).
    ORPHANED = 5


class ConfigMessage(TypedDict):
    """The one line on the config pipe."""

    generation: int
    slot: int
    config: dict[str, Any]


def encode_config(generation: int, slot: int, config: dict[str, Any]) -> bytes:
    """The config-pipe line."""
    message: ConfigMessage = {"generation": generation, "slot": slot, "config": config}
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_config(line: bytes) -> ConfigMessage:
    """Parse the config-pipe line; raises ValueError when it is not a ConfigMessage."""
    data = json.loads(line)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("config"), dict)
        or not all(isinstance(data.get(k), int) for k in ("generation", "slot"))
    ):
        raise ValueError("not a config message: expected generation, slot and config")
    return data  # type: ignore[return-value]


class StatusMessage(TypedDict, total=False):
    """One line on the status pipe."""

    type: MessageType
    pid: int
    t: float
    error: str
    code: int


def encode_message(message: StatusMessage | dict[str, Any]) -> bytes:
    """One status-pipe line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_message(line: bytes) -> StatusMessage:
    """Parse one status-pipe line; raises ValueError on garbage."""
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("type") not in (
        "ready",
        "heartbeat",
        "fatal",
        "draining",
    ):
        raise ValueError(f"not a status message: {line[:200]!r}")
    return data  # type: ignore[return-value]
