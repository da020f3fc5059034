"""Traffic for `faults.py`: load in separate processes, and a 10 ms prober.

* ``Load``: the client processes of ``benchmarks.load_clients`` (new connections and
  keep-alive, both INCRing a counter), with the gateway's API key; ``stop()`` returns
  their merged figures, and ``account(row, counter_new, counter_ka)`` fills a row's
  write accounting: every INCR answered 200 must be in the counter; the counter may
  exceed them only by INCRs that got no 200 (sent, maybe applied, never answered).
* ``Prober``: a thread sending one request on a new connection every 10 ms, each
  sample (start, end, status, body start) kept; ``recovery(after)`` is the time from
  ``after`` to the end of the first 200 among requests started after it.

Start load processes before any thread (they are forked).
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.fault_harness import Row
from benchmarks.load_clients import KA_KEY, NEW_KEY, keepalive_client, new_connection_client


class Load:
    """``new`` new-connection clients and ``keepalive`` keep-alive clients."""

    def __init__(self, port: int, headers: dict[str, str], new: int = 2, keepalive: int = 1):
        ctx = mp.get_context("fork")
        self._stop, self._out = ctx.Event(), ctx.Queue()
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.procs = [
            ctx.Process(target=new_connection_client, args=(port, self._stop, self._out, lines))
            for _ in range(new)
        ] + [
            ctx.Process(target=keepalive_client, args=(port, self._stop, self._out, headers))
            for _ in range(keepalive)
        ]
        for proc in self.procs:
            proc.start()
        self.results: list[dict[str, Any]] = []

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if not self.results:
            self.results = [self._out.get(timeout=30) for _ in self.procs]
        for proc in self.procs:
            proc.join(timeout=10)
        return self.results

    def kill(self) -> None:
        self._stop.set()
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)

    def account(self, row: Row, counter_new: int, counter_ka: int) -> None:
        """Requests, failures, waits, 5xx replies and writes of the clients, into ``row``."""
        results = self.results
        new = [r for r in results if r["kind"] == "new"]
        ka = [r for r in results if r["kind"] == "keepalive"]
        acked_new = sum(r["ok"] for r in new)
        acked_ka = sum(r.get("incr_ok", 0) for r in ka)
        unanswered = sum(r["failed"] for r in new) + sum(
            r.get("incr_failed", 0) + r.get("race_incr_not_retried", 0) for r in ka
        )
        row.requests += sum(r["ok"] + r["failed"] for r in new) + sum(
            r.get("incr_ok", 0) + r.get("get_ok", 0) + r.get("failed", 0)
            + r.get("race_incr_not_retried", 0) for r in ka
        )  # fmt: skip
        row.failed += sum(r["failed"] for r in new) + sum(
            r.get("failed", 0) + r.get("race_incr_not_retried", 0) for r in ka
        )
        row.writes_acked += acked_new + acked_ka
        row.writes_lost += max(0, acked_new - counter_new) + max(0, acked_ka - counter_ka)
        row.unacked_applied += max(0, counter_new - acked_new) + max(0, counter_ka - acked_ka)
        row.unanswered_writes += unanswered
        row.longest_wait_s = max(row.longest_wait_s, *(r["longest"] for r in results))
        errors: dict[str, int] = row.figures.get("load_errors", {})  # a row may hold several loads
        for r in results:
            for err, n in r["errors"].items():
                errors[err] = errors.get(err, 0) + n
        if errors:
            row.figures["load_errors"] = errors

    def fivexx(self) -> list[tuple[int, str]]:
        return [(status, body) for r in self.results for _, status, body in r["fivexx"]]


COUNTERS = (NEW_KEY, KA_KEY)


@dataclass(frozen=True)
class Sample:
    start: float
    end: float
    status: int
    body: str


class Prober:
    """One request every ``every`` seconds on a new connection, in a thread."""

    def __init__(self, port: int, path: str, headers: dict[str, str], every: float = 0.01) -> None:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{lines}\r\n"
        ).encode()
        self.port = port
        self.every = every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="prober")

    def _one(self) -> Sample:
        start = time.monotonic()
        received = b""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                sock.sendall(self.request)
                while chunk := sock.recv(65536):
                    received += chunk
        except OSError as exc:
            return Sample(start, time.monotonic(), 0, type(exc).__name__)
        head, _, body = received.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return Sample(start, time.monotonic(), status, body[:200].decode(errors="replace"))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._one())
            self._stop.wait(self.every)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def recovery(self, after: float) -> float | None:
        """Seconds from ``after`` to the first 200 among requests started after it."""
        ends = [s.end for s in self.samples if s.start >= after and s.status == 200]
        return round(min(ends) - after, 3) if ends else None

    def longest_gap(self, after: float) -> tuple[float, float]:
        """The longest stretch without a 200 among requests started after ``after``:
        from the start of its first failure to the end of the next 200 (0-long if none
        failed)."""
        best, began = (after, after), None
        for s in self.samples:
            if s.start < after:
                continue
            if s.status != 200:
                began = s.start if began is None else began
            elif began is not None:
                if s.end - began > best[1] - best[0]:
                    best = (began, s.end)
                began = None
        return best

    def first_ok_after(self, after: float, timeout: float) -> float:
        """Wait (to ``timeout``) for a 200 started after ``after``; return its end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.recovery(after)
            if found is not None:
                return after + found
            time.sleep(0.01)
        raise TimeoutError(f"no 200 within {timeout}s")

    def account(self, row: Row) -> None:
        row.requests += len(self.samples)
        row.failed += sum(s.status != 200 for s in self.samples)
        failures: dict[str, int] = row.figures.get("prober non-200 (0: no answer)", {})
        for s in self.samples:
            if s.status != 200:
                key = f"0 {s.body or 'empty reply'}" if s.status == 0 else str(s.status)
                failures[key] = failures.get(key, 0) + 1
        if failures:
            row.figures["prober non-200 (0: no answer)"] = failures
        row.longest_wait_s = max(
            row.longest_wait_s, max((s.end - s.start for s in self.samples), default=0.0)
        )

    def fivexx(self) -> list[tuple[int, str]]:
        return [(s.status, s.body) for s in self.samples if s.status >= 500]

    def statuses(self, between: tuple[float, float] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.samples:
            if between is None or between[0] <= s.start < between[1]:
                counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        return counts


def merge_5xx(*sources: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    return [reply for source in sources for reply in source]
