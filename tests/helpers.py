"""Shared test helpers: polling to a deadline (never fixed sleeps), free ports."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from gateway_worker.exchange import Request
from supervisor.embedded_redis import free_port

T = TypeVar("T")

__all__ = ["async_wait_until", "free_port", "wait_until"]


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # remembered and reported on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate!r}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


async def async_wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 15.0,
    interval: float = 0.01,
    what: str = "",
) -> T:
    """``wait_until`` for coroutines: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}")


def self_signed_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl), valid one day."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_request(
    method: str,
    path: str,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Request:
    """A protocol handler's request from 127.0.0.1 (no principal)."""
    return Request(
        method=method,
        path=path,
        query=query or [],
        headers=headers or {},
        body=body,
        client_ip="127.0.0.1",
    )
