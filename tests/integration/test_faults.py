"""The fault suite (`benchmarks/faults.py`) through its scenario functions, in quick mode:
real supervisors, workers and Redis on 127.0.0.1, so that the suite cannot rot. Each
scenario must meet every target (no acknowledged write lost, no traceback, no secret in
any output, nothing left behind, no unexpected 5xx, no hang, recovery within 1 s).

Five of the eight scenarios, ~30 s in all on 2 busy CPUs; the other three have their own
integration tests (supervisor SIGKILL: test_supervisor_hardening.py; malformed HTTP:
test_http_fuzz.py; slowloris: test_slow_clients.py), which keeps this file fast. The
whole suite, and its figures: `.venv/bin/python benchmarks/faults.py`,
benchmarks/FAULTS.md."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.fault_config_fuzz import config_fuzz
from benchmarks.fault_harness import Canaries, Row, SuiteRedis
from benchmarks.fault_inputs import reloads
from benchmarks.fault_scenarios import Suite, crash_loop, redis_restart, worker_sigkill
from benchmarks.faults import table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def suite() -> Iterator[Suite]:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="rg-ft-"))
    canaries = Canaries.fresh()
    store = SuiteRedis(canaries["redis_password_env"])
    try:
        yield Suite(root, canaries, store, quick=True)
    finally:
        store.stop(keep_data=False)
        shutil.rmtree(root, ignore_errors=True)


def _run(scenario: Callable[[Suite], Row], suite: Suite) -> Row:
    row = scenario(suite)
    print("\n" + table([row]))
    assert row.ok, table([row])
    return row


def test_worker_sigkill_loses_no_acknowledged_write(suite: Suite) -> None:
    row = _run(worker_sigkill, suite)
    assert row.writes_acked > 100 and row.recovery_s is not None
    assert max(row.figures["one killed: replaced after (s)"]) < 10


def test_a_redis_restart_gets_documented_503s_then_service(suite: Suite) -> None:
    row = _run(redis_restart, suite)
    assert row.documented_5xx > 0 and row.unexpected_5xx == 0  # 503 Redis unavailable
    assert row.recovery_s is not None and row.recovery_s <= 1.0


def test_a_crash_loop_gets_the_supervisors_503_then_service_within_1s(suite: Suite) -> None:
    row = _run(crash_loop, suite)
    assert row.documented_5xx > 10
    assert "503" in row.figures["prober statuses during the crash loop"]


def test_reloads_under_load_end_as_planned_and_the_cli_leaks_nothing(suite: Suite) -> None:
    row = _run(reloads, suite)
    assert row.figures["reloads by result"] == {"invalid": 3, "committed": 2, "readiness_failed": 1}
    assert row.figures["config CLI commands"] >= 4 and row.failed == 0


def test_fuzzed_configs_give_a_config_or_a_config_error_never_a_traceback(suite: Suite) -> None:
    row = _run(config_fuzz, suite)
    assert row.figures["in process"] == 300 and row.figures["valid"] > 10
    assert sum(row.figures["reloads by result"].values()) == 8
