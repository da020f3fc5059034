"""The fault suite's own detectors (benchmarks/fault_harness.py, fault_traffic.py): what
counts as a leak, a traceback, a lost write, a documented 5xx, an outage. The scenarios
on real processes: tests/integration/test_faults.py."""

from __future__ import annotations

from typing import Any

from benchmarks.fault_harness import Canaries, Row, classify_5xx
from benchmarks.fault_traffic import Load, Prober, Sample


def test_a_canary_is_found_even_partly_masked_and_a_traceback_in_any_text() -> None:
    canaries = Canaries.fresh()
    secret = canaries["jwt_secret_file"]
    row = Row("x")
    row.scan(
        {
            "clean": "nothing to see",
            "log": f'{{"error": "bad value ****{secret[-22:]}"}}',
            "stderr": 'Traceback (most recent call last):\n  File "x.py"',
            "json log": '{"event": "boom", "exception": "..."}',
            "a file named so": "not valid JSON (from configmap /tmp/cm/Traceback)",
            "quoted": 'got "Traceback (most recent call last)"; {"v": "\\"exception\\": "}',
        },
        [canaries],
    )
    assert row.leaks == 1 and row.tracebacks == 2
    assert "secret jwt_secret_file found in log" in row.problems
    assert not row.ok
    echoes = Row("y")  # config errors quoting a fuzzed value: leaks only
    echoes.scan({"error": f"got '\"exception\":' and {secret}"}, [canaries], tracebacks=False)
    assert (echoes.leaks, echoes.tracebacks) == (1, 0)


def test_only_the_documented_5xx_are_expected() -> None:
    assert classify_5xx(503, '{"error":"no worker is ready to serve: Redis ..."}') == "no_worker"
    assert classify_5xx(503, '{"error":"Redis unavailable: cannot connect"}') == "redis_unavailable"
    assert classify_5xx(504, "request did not complete within server.request_timeout_seconds=1")
    assert classify_5xx(503, "Service Unavailable") == "other"  # max_connections
    assert classify_5xx(500, '{"error":"internal error"}') == "other"
    row = Row("x")
    row.add_5xx([(503, "Redis unavailable: x"), (500, "internal error")], {"redis_unavailable"})
    assert (row.documented_5xx, row.unexpected_5xx) == (1, 1) and not row.ok


def _load(results: list[dict[str, Any]]) -> Load:
    load = Load.__new__(Load)  # no processes: only the accounting
    load.results = results
    return load


def test_every_acknowledged_write_must_be_in_the_counter() -> None:
    new = {"kind": "new", "ok": 10, "failed": 2, "errors": {}, "longest": 0.1, "fivexx": []}
    ka = {"kind": "keepalive", "incr_ok": 5, "get_ok": 5, "failed": 0, "errors": {},
          "longest": 2.5, "fivexx": []}  # fmt: skip
    row = Row("x")
    _load([new, ka]).account(row, counter_new=12, counter_ka=4)
    assert (row.writes_acked, row.writes_lost, row.unacked_applied) == (15, 1, 2)
    assert row.unanswered_writes == 2 and row.requests == 22 and row.longest_wait_s == 2.5
    row.judge(recovery_target=None)
    assert row.problems == ["1 acknowledged writes lost", "a request waited 2.50 s (hang)"]
    row = Row("y")
    _load([new]).account(row, counter_new=13, counter_ka=0)  # 3 applied, 2 unanswered
    row.judge(recovery_target=None)
    assert row.problems == ["3 writes applied without a reply, more than the 2 that got none"]


def test_recovery_and_the_longest_gap_are_read_from_the_samples() -> None:
    prober = Prober(1, "/", {})
    prober.samples = [
        Sample(0.0, 0.01, 200, ""),
        Sample(1.0, 1.01, 0, "ConnectionRefusedError"),
        Sample(1.5, 1.51, 503, "no worker is ready to serve"),
        Sample(2.0, 2.02, 200, ""),
        Sample(3.0, 3.01, 0, ""),
        Sample(3.1, 3.11, 200, ""),
    ]
    assert prober.recovery(1.2) == 0.82  # the 200 started at 2.0 ends at 2.02
    assert prober.recovery(3.2) is None
    assert prober.longest_gap(0.5) == (1.0, 2.02)
    assert prober.statuses((1.0, 2.0)) == {"0": 1, "503": 1}
    row = Row("x", recovery_s=1.2)
    row.judge()
    assert row.problems == ["recovery 1.2 s > 1.0 s"]
