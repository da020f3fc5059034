"""The throughput benchmark's checks and loads against a real gateway, briefly, so
they cannot rot: the HTTP/1.1 pipelining order check (and that it catches disorder),
the soak's RSS sampling, and (with wrk installed) its pipelined and POST scripts; and
the in-process benchmark (benchmarks/hot_path.py), briefly."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.hot_path import PATHS as HOT_PATHS
from benchmarks.throughput_checks import check_pipelined_order, order_check_keys, pipelined
from benchmarks.throughput_procs import connections_held, worker_pids
from benchmarks.throughput_soak import sample
from benchmarks.throughput_targets import gateway_targets
from benchmarks.throughput_wrk import run_wrk
from tests.integration.conftest import Gateway


@pytest.fixture
def seeded(gateway_factory: Callable[..., Gateway]) -> tuple[Gateway, dict[str, str]]:
    gw = gateway_factory({"server": {"workers": 1}})
    keys = order_check_keys(16)
    replies = pipelined(gw.port, [f"/set/{k}/{v}" for k, v in keys.items()])
    assert [r.status for r in replies] == [200] * 16
    return gw, keys


@pytest.mark.parametrize("prefix", ["/get", "/webdis/GET"])
def test_sixteen_pipelined_requests_are_answered_in_order(
    seeded: tuple[Gateway, dict[str, str]], prefix: str
) -> None:
    gw, keys = seeded
    paths = [f"{prefix}/{k}" for k in keys]
    check_pipelined_order(gw.port, paths, list(keys.values()))
    with pytest.raises(AssertionError, match="pipelined response 1 of 16"):
        check_pipelined_order(gw.port, paths, list(reversed(keys.values())))


def test_soak_sample_tells_workers_from_standbys(seeded: tuple[Gateway, dict[str, str]]) -> None:
    gw, _ = seeded
    assert gw.proc is not None
    now = sample(gw.proc.pid, Path(gw.control_socket), 5)
    assert set(now.workers_mb) == gw.worker_pids() and len(now.workers_mb) == 1
    assert set(now.workers_mb) | set(now.standby_mb) == set(worker_pids(gw.proc.pid))
    assert 5 < now.supervisor_mb < 500 and all(5 < mb < 500 for mb in now.workers_mb.values())


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_runs_the_pipelined_and_pipeline_loads(
    seeded: tuple[Gateway, dict[str, str]], tmp_path: Path
) -> None:
    gw, _ = seeded
    targets = {t.op: t for t in gateway_targets("gw", f"http://127.0.0.1:{gw.port}")}
    for op in ("GETx16", "PIPE100"):
        target = targets[op]
        script = target.write_script(tmp_path)
        assert script is not None
        result = run_wrk(op, target.url, 1, 4, 1, script)
        assert result.requests > 0 and result.non_2xx == 0 and result.errors == 0, result


def run_benchmark(name: str, *args: str) -> str:
    """What ``benchmarks/<name>`` printed, run with ``args`` (it must exit 0)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / name
    done = subprocess.run(
        [sys.executable, str(script), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_in_process_benchmark_serves_every_path() -> None:
    """benchmarks/hot_path.py: every path answered (it checks each answer) and timed."""
    out = run_benchmark("hot_path.py", "--requests", "300", "--repeat", "1", "--connections", "8")
    timed = re.findall(r"^(\S+) +([0-9.]+) µs/request", out, re.MULTILINE)
    assert [name for name, _ in timed] == list(HOT_PATHS)
    assert all(float(us) > 0 for _, us in timed)


def test_the_accept_balance_benchmark_counts_every_connection() -> None:
    """benchmarks/accept_balance.py: each burst's split adds up to its connections."""
    out = run_benchmark("accept_balance.py", "--trials", "2", "--connections", "8", "--compare")
    splits = re.findall(r"^  splits: (.+)$", out, re.MULTILINE)
    assert len(splits) == 2  # libuv's default, then single accept
    for line in splits:
        bursts = [list(map(int, s.split("/"))) for s in line.split()]
        assert len(bursts) == 2 and all(sum(b) == 8 and len(b) == 2 for b in bursts)


def test_the_connections_each_worker_holds_are_counted(
    seeded: tuple[Gateway, dict[str, str]],
) -> None:
    gw, _ = seeded
    assert gw.proc is not None
    socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=5) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        held = connections_held(worker_pids(gw.proc.pid), gw.port)
        assert held[0] == 3 and sum(held) == 3  # one worker: all three, standbys none
    finally:
        for sock in socks:
            sock.close()
