"""Hostile HTTP against a real gateway: malformed requests must get a 4xx or a close,
never a 5xx, a hang or a traceback, and the gateway must keep serving.

Reusable (the fault suite calls it)::

    report = run_http_fuzz("127.0.0.1", port, cases=3000, seed=1)
    findings = scan_log(log_text)     # tracebacks, error lines, "Invalid HTTP" lines
    assert report.ok and findings.ok

Standalone: starts a private Redis and ``redis-gateway run`` per engine on free ports
of 127.0.0.1, fuzzes each, prints the figures, exits 1 on any failure::

    .venv/bin/python benchmarks/http_fuzz.py [--cases 3000] [--seed 1] [--engine both]

Each case is one new connection (``http_fuzz_cases``): the bytes are sent, the client
half-closes unless the case is a complete request, and reads until the server closes or
``hang_seconds`` pass (a hang). Every response on the connection is parsed (status line,
then Content-Length or chunked framing), so a 5xx is found even after a 200. Between
batches an honest ``GET /ping`` on a new connection must answer 200.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.http_fuzz_cases import Case, generate  # noqa: E402

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")


@dataclass
class FuzzReport:
    """What the gateway did with the cases (``ok``: nothing it must not do)."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "400", "closed", "hang", ...
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # 5xx and hangs, with the bytes sent
    honest_ok: int = 0
    honest_failed: int = 0
    seconds: float = 0.0

    @property
    def five_xx(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome.startswith("5"))

    @property
    def ok(self) -> bool:
        return not self.five_xx and not self.outcomes["hang"] and not self.honest_failed


def parse_statuses(data: bytes) -> tuple[list[int], bool]:
    """The status of every response in ``data`` (bodies skipped by their framing), and
    whether ``data`` ends exactly after a whole response."""
    statuses: list[int] = []
    while (match := _STATUS.match(data)) is not None:
        statuses.append(int(match.group(1)))
        end = data.find(b"\r\n\r\n", match.end() - 2)
        if end < 0:
            return statuses, False
        head, data = data[: end + 4].lower(), data[end + 4 :]
        length = re.search(rb"\r\ncontent-length: *(\d+)", head)
        if length is not None:
            if len(data) < int(length.group(1)):
                return statuses, False
            data = data[int(length.group(1)) :]
        elif b"transfer-encoding: chunked" in head:
            while (eol := data.find(b"\r\n")) >= 0:
                size = int(data[:eol].split(b";")[0] or b"0", 16)
                data = data[eol + 2 + size + 2 :]
                if size == 0:
                    break
            else:
                return statuses, False
    return statuses, bool(statuses) and not data


def send_case(host: str, port: int, case: Case, hang_seconds: float) -> str:
    """One case on a new connection: its worst outcome ("5xx" first, then "hang").

    Half-closed cases are read until the server closes. A case sent without a half-close
    is a complete request: once whole responses came and nothing more arrives for a
    moment, the connection may rightly stay open (keep-alive)."""
    sock = socket.create_connection((host, port), timeout=hang_seconds)
    received, outcome = b"", ""
    try:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(case.data)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + hang_seconds
        while True:
            wait = deadline - time.monotonic()
            if not case.half_close and parse_statuses(received)[1]:
                wait = min(wait, 0.3)
            sock.settimeout(max(0.01, wait))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                outcome = "open" if parse_statuses(received)[1] else "hang"
                break
            except OSError:
                outcome = "reset"
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    statuses, _ = parse_statuses(received)
    worst = max(statuses, key=lambda s: (s >= 500, s), default=None)
    if worst is not None and (worst >= 500 or outcome != "hang"):
        return str(worst)
    return outcome or ("closed" if not received else "unparsed")


def honest_request(host: str, port: int, timeout: float = 5.0) -> bool:
    """``GET /ping`` on a new connection answers 200 ``{"result":"PONG"}``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'{"result":"PONG"}')


def run_http_fuzz(
    host: str,
    port: int,
    cases: int = 3000,
    seed: int = 1,
    concurrency: int = 8,
    hang_seconds: float = 3.0,
    batch: int = 100,
) -> FuzzReport:
    """Send ``cases`` generated cases, ``concurrency`` at a time, with an honest
    request after every ``batch``; return what came back."""
    report = FuzzReport()
    began = time.monotonic()
    generated = generate(cases, seed)
    with ThreadPoolExecutor(concurrency) as pool:
        for start in range(0, len(generated), batch):
            chunk = generated[start : start + batch]
            outcomes = pool.map(lambda c: send_case(host, port, c, hang_seconds), chunk)
            for case, outcome in zip(chunk, outcomes, strict=True):
                report.cases += 1
                report.outcomes[outcome] += 1
                report.by_category.setdefault(case.category, Counter())[outcome] += 1
                if outcome.startswith("5") or outcome == "hang":
                    report.bad.append(f"{outcome} {case.category}: {case.data[:160]!r}")
            if honest_request(host, port):
                report.honest_ok += 1
            else:
                report.honest_failed += 1
    report.seconds = time.monotonic() - began
    return report


@dataclass
class LogFindings:
    """What a gateway's log says about the fuzz."""

    tracebacks: int
    error_lines: int
    malformed_lines: int

    @property
    def ok(self) -> bool:
        return not self.tracebacks and not self.error_lines


def scan_log(text: str) -> LogFindings:
    """Tracebacks (a ``Traceback`` or an ``exception`` field), lines at level error or
    above, and lines about malformed HTTP (throttled: a few, not one per request)."""
    lines = text.splitlines()
    return LogFindings(
        tracebacks=sum("Traceback" in line or '"exception":' in line for line in lines),
        error_lines=sum(
            '"level": "error"' in line or '"level": "critical"' in line for line in lines
        ),
        malformed_lines=sum("Invalid HTTP request received." in line for line in lines),
    )


def format_report(name: str, report: FuzzReport, findings: LogFindings | None) -> str:
    lines = [
        f"{name}: {report.cases} cases in {report.seconds:.1f} s, 5xx={report.five_xx}, "
        f"hangs={report.outcomes['hang']}, honest ok {report.honest_ok}/"
        f"{report.honest_ok + report.honest_failed}",
        "  outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(report.outcomes.items())),
    ]
    for category, counts in sorted(report.by_category.items()):
        lines.append(f"  {category:<22} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if findings is not None:
        lines.append(
            f"  log: tracebacks={findings.tracebacks} error_lines={findings.error_lines} "
            f"'Invalid HTTP request received.' lines={findings.malformed_lines}"
        )
    lines += [f"  BAD {line}" for line in report.bad[:20]]
    return "\n".join(lines)


def _start_gateway(
    redis_url: str, engine: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], int, Path]:
    from supervisor.embedded_redis import free_port

    port, log_path = free_port(), workdir / f"gateway-{engine}.log"
    sets = {
        "server.host": "127.0.0.1", "server.port": port, "server.workers": 2,
        "server.http_engine": engine, "redis.url": redis_url,
        "observability.metrics.enabled": "false", "supervisor.watch_config": "false",
        "supervisor.control_socket": f"{tempfile.gettempdir()}/http-fuzz-{port}.sock",
    }  # fmt: skip
    args = [str(Path(sys.executable).with_name("redis-gateway")), "run"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not honest_request("127.0.0.1", port, 1.0):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"gateway ({engine}) did not start: see {log_path}")
        time.sleep(0.1)
    return proc, port, log_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("uvicorn", "native", "both"), default="both")
    parser.add_argument("--log-dir", type=Path, help="keep the gateways' logs here")
    args = parser.parse_args()
    from supervisor.embedded_redis import EmbeddedRedis

    engines = ["uvicorn", "native"] if args.engine == "both" else [args.engine]
    redis = EmbeddedRedis()
    redis.start()
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="http-fuzz-") as tmp:
            workdir = args.log_dir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for engine in engines:
                proc, port, log_path = _start_gateway(redis.url, engine, workdir)
                try:
                    report = run_http_fuzz("127.0.0.1", port, args.cases, args.seed)
                finally:
                    proc.terminate()
                    proc.wait(30)
                findings = scan_log(log_path.read_text(errors="replace"))
                print(format_report(f"engine={engine}", report, findings))
                failed |= not (report.ok and findings.ok)
    finally:
        redis.stop()
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
