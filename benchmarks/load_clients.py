"""Load generators for `reload_under_load.py` and `faults.py`, each run in its own process.

Both report through a multiprocessing queue: successes per 100 ms bucket (for the
throughput curve) and the send times of failures, slow requests and races, so the
parent can attribute each to a reload phase or to the SIGKILLed worker; also the
longest wait of any request, the requests that waited over ``HANG_SECONDS`` and every
5xx with the start of its body (``faults.py`` tells documented 503/504 from others).
``headers`` are sent with every request (e.g. an API key).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections import Counter
from typing import Any

BUCKET = 0.1  # seconds per throughput bucket
HANG_SECONDS = 2.0  # a request waiting longer than this is a hang (faults.py's target)
FAILURE_PAUSE = 0.01  # after a failure (nothing listens, say): no busy loop on the CPUs
NEW_KEY = "bench:new"
KA_KEY = "bench:keepalive"


class _Waits:
    """The longest wait, the hangs and the 5xx replies of one client."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.hangs: list[tuple[float, float, str]] = []  # (sent, seconds, outcome)
        self.fivexx: list[tuple[float, int, str]] = []  # (sent, status, body start)

    def done(self, sent: float, outcome: str, status: int = 0, body: bytes = b"") -> None:
        waited = time.monotonic() - sent
        self.longest = max(self.longest, waited)
        if waited > HANG_SECONDS:
            self.hangs.append((sent, round(waited, 3), outcome))
        if status >= 500:
            self.fivexx.append((sent, status, body[:200].decode(errors="replace")))

    def report(self) -> dict[str, Any]:
        return {"longest": self.longest, "hangs": self.hangs, "fivexx": self.fivexx}


def _status(head: bytes) -> int:
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def new_connection_client(port: int, stop: Any, out: Any, headers: str = "") -> None:
    """One TCP connection per request (`Connection: close`): every failure counts.
    ``headers``: extra header lines, each ending with CRLF."""
    request = (
        f"GET /incr/{NEW_KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    ).encode()
    ok = failed = 0
    errors: Counter[str] = Counter()
    buckets: Counter[int] = Counter()
    failed_at: list[float] = []
    slow: list[tuple[float, float]] = []  # (sent, seconds) of requests over 100 ms
    waits = _Waits()
    while not stop.is_set():
        sent = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(request)
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            reply = b"".join(chunks)
            head, _, body = reply.partition(b"\r\n\r\n")
            waits.done(sent, head[:12].decode(errors="replace"), _status(head), body)
            if head.startswith(b"HTTP/1.1 200") and b'"result"' in body:
                ok += 1
                now = time.monotonic()
                buckets[int(now / BUCKET)] += 1
                if now - sent > 0.1:
                    slow.append((sent, now - sent))
            else:
                failed += 1
                failed_at.append(sent)
                errors[head.split(b"\r\n", 1)[0].decode(errors="replace") or "empty reply"] += 1
                time.sleep(FAILURE_PAUSE)
        except OSError as exc:
            waits.done(sent, type(exc).__name__)
            failed += 1
            failed_at.append(sent)
            errors[type(exc).__name__] += 1
            time.sleep(FAILURE_PAUSE)
    out.put(
        {
            **waits.report(),
            "kind": "new",
            "ok": ok,
            "failed": failed,
            "errors": dict(errors),
            "buckets": dict(buckets),
            "failed_at": failed_at,
            "slow": slow,
        }
    )


def keepalive_client(port: int, stop: Any, out: Any, headers: dict[str, str] | None = None) -> None:
    """A persistent connection alternating INCR (not retried) and GET (retried once)."""
    waits = _Waits()
    stats: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    buckets: Counter[int] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    race_at: list[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        is_incr = n % 2 == 1
        path = f"/incr/{KA_KEY}" if is_incr else f"/get/{KA_KEY}"
        for attempt in (1, 2):
            sent = time.monotonic()
            try:
                conn.request("GET", path, headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                waits.done(sent, f"HTTP {resp.status}", resp.status, body)
                if resp.getheader("connection", "").lower() == "close":
                    stats["graceful_close"] += 1
                if resp.status == 200 and b'"result"' in body:
                    stats["incr_ok" if is_incr else "get_ok"] += 1
                    buckets[int(time.monotonic() / BUCKET)] += 1
                else:
                    stats["failed"] += 1
                    stats["incr_failed" if is_incr else "get_failed"] += 1
                    errors[f"HTTP {resp.status}"] += 1
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed the connection as we sent: nothing came back.
                waits.done(sent, type(exc).__name__)
                conn.close()
                race_at.append(sent)
                if is_incr:
                    stats["race_incr_not_retried"] += 1
                    errors[f"race on INCR: {type(exc).__name__}"] += 1
                    break
                if attempt == 1:
                    stats["race_get_retried"] += 1
                    continue
                stats["failed"] += 1
                stats["get_failed"] += 1
                errors[f"retry failed: {type(exc).__name__}"] += 1
            except OSError as exc:
                waits.done(sent, type(exc).__name__)
                conn.close()
                stats["failed"] += 1
                stats["incr_failed" if is_incr else "get_failed"] += 1
                errors[type(exc).__name__] += 1
                time.sleep(FAILURE_PAUSE)
                break
    conn.close()
    out.put(
        {
            **waits.report(),
            "kind": "keepalive",
            **stats,
            "errors": dict(errors),
            "buckets": dict(buckets),
            "race_at": race_at,
        }
    )
