"""The throughput benchmark's pure parts (benchmarks/throughput_*.py): reading wrk's
output, the Lua scripts it runs, the soak's verdict. The benchmark is not a test;
these keep its helpers from rotting (tests/integration/test_throughput_bench.py runs
them against a real gateway)."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks.throughput_checks import order_check_keys, pipeline_body
from benchmarks.throughput_soak import Sample, Soak, format_soak
from benchmarks.throughput_targets import gateway_targets, reference, webdis_targets
from benchmarks.throughput_wrk import cycling_script, parse_wrk, pipelined_script

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:45999/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    27.33ms   14.55ms  68.57ms   60.36%
    Req/Sec    10.32k     1.20k   12.26k    72.50%
  Latency Distribution
     50%  826.87us
     75%   39.06ms
     90%   47.06ms
     99%    1.20s
  41152 requests in 2.01s, 15.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  20486.66
Transfer/sec:      7.52MB
"""


def test_parse_wrk_reads_rate_latencies_errors_and_transfer() -> None:
    result = parse_wrk("x", WRK_OUTPUT)
    assert result.rps == pytest.approx(20486.66)
    assert result.p50_ms == pytest.approx(0.82687)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.requests, result.errors, result.non_2xx) == (41152, 5, 7)
    assert result.bytes_per_s == pytest.approx(7.52 * 1024 * 1024)


def test_parse_wrk_without_a_rate_names_the_row() -> None:
    with pytest.raises(ValueError, match="webdis GET: no 'Requests/sec'"):
        parse_wrk("webdis GET", "unable to connect to 127.0.0.1:1 Connection refused")


def test_pipelined_script_concatenates_depth_requests_with_body_and_headers() -> None:
    body = pipeline_body(["GET", "k"], 3)
    script = pipelined_script("/pipeline", 16, "POST", body, {"Content-Type": "application/json"})
    assert "for i = 1, 16 do" in script and "table.concat(r)" in script
    literal = re.search(r'"application/json"\}, (".*")\)', script)
    assert literal is not None and json.loads(json.loads(literal.group(1))) == [["GET", "k"]] * 3
    with pytest.raises(ValueError, match="at least 1"):
        pipelined_script("/get/k", 0)
    with pytest.raises(ValueError, match="ASCII"):
        pipelined_script("/get/é", 1)


def test_cycling_script_lists_every_path() -> None:
    script = cycling_script(["/get/a", "/set/b:%d/v"])
    assert '{"/get/a", "/set/b:%d/v"}' in script and "sent % 1000" in script


def test_every_gateway_load_has_its_webdis_reference() -> None:
    ops = {t.op for t in webdis_targets("http://w")}
    for target in gateway_targets("native", "http://g"):
        assert reference(target).split()[1] in ops, target.name
    keys = order_check_keys(16)
    assert len(set(keys.values())) == 16
    assert not any(a in b for a in keys.values() for b in keys.values() if a != b)


def _soak(*worker: float) -> Soak:
    soak = Soak()
    for i, mb in enumerate(worker):
        soak.samples.append(Sample(i * 1000, 20.0, {7: mb}, {8: 30.0 + i}))
    return soak


def test_soak_is_flat_within_two_mb_of_the_first_warm_sample() -> None:
    flat = _soak(30.0, 35.0, 36.5, 33.5)  # 30 -> 35: warm-up, not drift
    assert flat.flat() and flat.drift_mb()["worker 7"] == pytest.approx(1.5)
    assert "standby 8" not in flat.drift_mb()  # standbys serve nothing
    growing = _soak(30.0, 35.0, 36.0, 37.5)
    assert not growing.flat()
    vanished = _soak(30.0, 35.0, 35.0)
    vanished.samples[-1].workers_mb = {}  # worker 7 gone (crashed, recycled)
    assert not vanished.flat()
    lines = format_soak(growing)
    assert lines[0].split() == ["requests", "supervisor", "worker", "7", "standby", "8"]
    assert "NOT flat" in lines[-2]
