"""wrk for the throughput benchmark: running it, reading its output, and the Lua
scripts that build pipelined, POST and counted-request loads.

wrk counts every *response* as a request, so with an HTTP/1.1-pipelining script of
depth 16 its req/s is responses per second, like any other row.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

#: wrk's own units (binary, as its Transfer/sec line prints them).
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass
class Result:
    """One wrk run (or the median of several: see :func:`median_result`)."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    requests: int = 0
    cpu_us: float = float("nan")  # server CPU time per request (all its processes)
    bytes_per_s: float = 0.0  # wrk's Transfer/sec: response bytes, headers included
    extra: dict[str, float] = field(default_factory=dict)
    #: wrk's connections held by each gateway worker mid-run, busiest first ("33/31"):
    #: they spread unevenly (benchmarks/accept_balance.py), which moves a row's req/s
    split: str = ""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60_000}[unit]


def _size(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([KMGT]?B)", text)
    return float(match.group(1)) * _SIZE_UNITS[match.group(2)] if match else 0.0


def parse_wrk(name: str, out: str) -> Result:
    """A :class:`Result` from wrk's ``--latency`` output; ValueError without a rate."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise ValueError(f"{name}: no 'Requests/sec' in wrk's output:\n{out}")
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    transfer = re.search(r"Transfer/sec:\s+(\S+)", out)
    return Result(
        name,
        float(rps.group(1)),
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
        int(done.group(1)) if done else 0,
        bytes_per_s=_size(transfer.group(1)) if transfer else 0.0,
    )


def run_wrk(
    name: str,
    url: str,
    duration: float,
    connections: int,
    threads: int,
    script: str | None = None,
) -> Result:
    """One wrk run (``script``: a wrk Lua script building the requests), bounded in time."""
    extra = ["-s", script] if script else []
    seconds = max(1, round(duration))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return parse_wrk(name, out)


def median_result(results: list[Result]) -> Result:
    """The round with the median req/s (its latencies and CPU come with it)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def _lua_string(text: str) -> str:
    """A Lua string literal for ``text`` (JSON's escapes are valid Lua for ASCII)."""
    if not text.isascii():
        raise ValueError(f"only ASCII goes into a wrk script, not {text!r}")
    return json.dumps(text)


def _headers_table(headers: dict[str, str]) -> str:
    pairs = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    return "{" + pairs + "}"


def pipelined_script(
    path: str,
    depth: int,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """A wrk script sending ``depth`` requests per write (HTTP/1.1 pipelining).

    Depth 1 is an ordinary one-request-at-a-time load, with a method, body and headers.
    """
    if depth < 1:
        raise ValueError(f"pipelining depth must be at least 1, not {depth}")
    one = (
        f"wrk.format({_lua_string(method)}, {_lua_string(path)}, "
        f"{_headers_table(headers or {})}, {_lua_string(body) if body is not None else 'nil'})"
    )
    return (
        "init = function(args)\n"
        "  local r = {}\n"
        f"  for i = 1, {depth} do r[i] = {one} end\n"
        "  req = table.concat(r)\n"
        "end\n"
        "request = function()\n"
        "  return req\n"
        "end\n"
    )


def cycling_script(paths: list[str]) -> str:
    """A wrk script cycling over ``paths`` (``%d`` in a path: the request's number
    modulo 1000, so writes spread over 1,000 keys)."""
    if not paths:
        raise ValueError("a cycling script needs at least one path")
    table = ", ".join(_lua_string(p) for p in paths)
    return (
        f"local paths = {{{table}}}\n"
        "local sent = 0\n"
        "request = function()\n"
        "  sent = sent + 1\n"
        "  local path = paths[sent % #paths + 1]\n"
        '  return wrk.format("GET", string.format(path, sent % 1000))\n'
        "end\n"
    )
