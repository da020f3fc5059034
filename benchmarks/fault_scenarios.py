"""The fault scenarios of `faults.py` that break processes: each takes the ``Suite`` and
returns one ``Row`` (see ``benchmarks.fault_harness``).

* ``worker_sigkill``: under load, SIGKILL one worker, then every worker at once.
* ``redis_restart``: under load, Redis stopped (SIGTERM) and started again on its port.
* ``supervisor_sigkill``: under load, SIGKILL the supervisor and `run` it again at once
  (as systemd's ``Restart=`` would): its orphaned workers must drain and exit by
  themselves, the new one must bind the same port, remove the dead one's leftovers
  and serve.
* ``crash_loop``: Redis stopped and every worker SIGKILLed, so that each replacement
  fails at boot; the supervisor must answer 503 itself; Redis back: service within 1 s.

Recovery is measured by a prober (a request on a new connection every 10 ms) from the
moment the cause went away: the kill (a worker), Redis answering again, the restart.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.fault_gateway import FaultGateway
from benchmarks.fault_harness import Canaries, Row, SuiteRedis, poll
from benchmarks.fault_traffic import COUNTERS, Load, Prober, merge_5xx
from benchmarks.gateway_process import Sections

PROBE_PATH = "/get/faults:probe"  # reaches Redis: a 200 means the whole path works


@dataclass
class Suite:
    """What every scenario shares."""

    root: Path
    canaries: Canaries
    redis: SuiteRedis
    quick: bool

    def gateway(
        self, name: str, workers: int = 2, extra: dict[str, dict[str, Any]] | None = None
    ) -> FaultGateway:
        return FaultGateway(self.root, name, self.redis, self.canaries, workers, extra)

    def reset_counters(self) -> None:
        with self.redis.client() as db:
            db.delete(*COUNTERS)

    def counters(self) -> tuple[int, int]:
        with self.redis.client() as db:
            new, ka = db.mget(COUNTERS)
        return int(new or 0), int(ka or 0)

    @property
    def repeats(self) -> int:
        """How many times a scenario breaks things (more data per run, not --quick)."""
        return 1 if self.quick else 3

    def pause(self, full: float, quick: float) -> None:
        """Let the load run (a duration of the scenario, not a synchronisation)."""
        time.sleep(quick if self.quick else full)


@contextmanager
def gateway_row(
    suite: Suite,
    row: Row,
    workers: int = 2,
    extra: Sections | None = None,
    cli: bool = False,
    name: str | None = None,
) -> Iterator[FaultGateway]:
    """A serving gateway for the scenario. Afterwards, whatever happened, its outputs are
    scanned for tracebacks and secrets; after a clean stop nothing may be left behind.
    An exception (a deadline, a timeout) ends the scenario as a problem of its row."""
    began = time.monotonic()
    fgw: FaultGateway | None = None
    texts: dict[str, str] = {}
    try:
        fgw = suite.gateway(re.sub(r"\W+", "-", name or row.scenario).lower(), workers, extra)
        fgw.wait_serving(workers)
        baseline = fgw.fds()
        yield fgw
        fd_leak = fgw.fds_back_to(baseline, timeout=10)
        row.left([fd_leak] if fd_leak else [])
        texts = fgw.outputs_while_running(cli)
        row.left(fgw.stop_cleanly())
    except Exception as exc:
        row.problems.append(f"{type(exc).__name__}: {exc}"[:400])
    finally:
        if fgw is not None:
            fgw.kill_everything()
            texts |= fgw.outputs_after_stop()
            row.scan(texts, [suite.canaries])
        row.seconds = round(row.seconds + time.monotonic() - began, 1)


def with_load(
    suite: Suite, fgw: FaultGateway, row: Row, allowed: set[str], body: Callable[[Prober], None]
) -> None:
    """Load and a prober around ``body``; then the write accounting and the 5xx."""
    suite.reset_counters()
    load = Load(fgw.port, fgw.auth)  # forked before the prober's thread starts
    try:
        with Prober(fgw.port, PROBE_PATH, fgw.auth) as prober:
            suite.pause(1.0, 0.5)
            body(prober)
            suite.pause(1.0, 0.5)
        load.stop()
    finally:
        load.kill()
    load.account(row, *suite.counters())
    prober.account(row)
    row.add_5xx(merge_5xx(load.fivexx(), prober.fivexx()), allowed)


def ready_pids(fgw: FaultGateway) -> list[int]:
    st = fgw.gw.status()
    current = st["generation"]
    return [w["pid"] for w in st["workers"] if w["state"] == "ready" and w["generation"] == current]


def _replaced(fgw: FaultGateway, victim: int) -> bool:
    return fgw.gw.serving(2) and victim not in ready_pids(fgw)


def _times(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def worker_sigkill(suite: Suite) -> Row:
    """``repeats`` times: one worker killed, then every worker at once."""
    row = Row("worker SIGKILL")
    one: list[float] = []
    replaced: list[float] = []
    every: list[float] = []
    with gateway_row(suite, row) as fgw:

        def body(prober: Prober) -> None:
            for _ in range(suite.repeats):
                victim = ready_pids(fgw)[0]
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                done = poll(functools.partial(_replaced, fgw, victim), 30, "its replacement")
                replaced.append(done - killed_at)
                one.append(prober.first_ok_after(killed_at, 10) - killed_at)
                suite.pause(1.0, 0.3)
                pids = ready_pids(fgw)
                killed_all_at = time.monotonic()
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                every.append(prober.first_ok_after(killed_all_at, 30) - killed_all_at)
                poll(lambda: fgw.gw.serving(2), 30, "both replaced")
                suite.pause(1.0, 0.3)

        with_load(suite, fgw, row, {"no_worker"}, body)
    row.recovery_s = round(max(one + every), 3) if one and every else None
    row.figures |= {
        "one killed: first 200 after (s)": _times(one),
        "one killed: replaced after (s)": _times(replaced),
        "all killed: first 200 after (s)": _times(every),
    }
    row.judge()
    return row


def redis_restart(suite: Suite) -> Row:
    """``repeats`` times: Redis stopped (SIGTERM), started again on its port."""
    row = Row("Redis restart")
    down: list[float] = []
    back: list[float] = []
    statuses: dict[str, int] = {}
    with gateway_row(suite, row) as fgw:

        def body(prober: Prober) -> None:
            for _ in range(suite.repeats):
                suite.redis.stop(keep_data=True)
                down_at = time.monotonic()  # stopped: it has exited
                suite.pause(1.5, 0.7)
                suite.redis.start()  # returns once it answers: the cause is gone
                back_at = time.monotonic()
                back.append(prober.first_ok_after(back_at, 20) - back_at)
                down.append(back_at - down_at)
                for k, n in prober.statuses((down_at + 0.1, back_at)).items():
                    statuses[k] = statuses.get(k, 0) + n
                suite.pause(1.0, 0.3)

        with_load(suite, fgw, row, {"redis_unavailable"}, body)
    row.recovery_s = round(max(back), 3) if back else None
    row.figures |= {
        "Redis down (s)": _times(down),
        "first 200 after Redis is back (s)": _times(back),
        "prober statuses while down": statuses,
    }
    row.judge()
    return row


def supervisor_sigkill(suite: Suite) -> Row:
    """``repeats`` times: SIGKILL, restarted at once. Recovery here is the restart's cold
    start (interpreter, imports, first workers): reported (``serving again after the
    restart``), not judged against the 1 s target, which is for what the gateway
    recovers from by itself."""
    row = Row("supervisor SIGKILL")
    with gateway_row(suite, row) as fgw:

        def body(prober: Prober) -> None:
            for _ in range(suite.repeats):
                _kill_and_restart(fgw, prober, row)
                suite.pause(1.0, 0.3)

        with_load(suite, fgw, row, set(), body)
    row.judge(recovery_target=None)
    return row


def _kill_and_restart(fgw: FaultGateway, prober: Prober, row: Row) -> None:
    workers = [p.pid for p in fgw.children()]
    cleaned = fgw.gw.logs().count("supervisor.leftovers_removed")
    killed_at = time.monotonic()
    fgw.gw.proc.kill()
    fgw.gw.proc.wait(10)
    left = sorted(p.name for p in fgw.rundir.iterdir())
    restarted_at = time.monotonic()
    fgw.gw.restart()
    gone = poll(lambda: not any(_alive(p) for p in workers), 30, "orphans gone", 0.02)
    fgw.wait_serving(2)
    prober.first_ok_after(time.monotonic(), 10)
    gap_start, gap_end = prober.longest_gap(killed_at)
    figures = {
        "orphaned workers gone after (s)": round(gone - killed_at, 3),
        "dead supervisor's files": len(left),
        "no 200 for (s)": round(gap_end - gap_start, 3),
        "serving again after the restart (s)": round(max(0.0, gap_end - restarted_at), 3),
    }
    for key, value in figures.items():
        row.figures.setdefault(key, []).append(value)
    if fgw.gw.logs().count("supervisor.leftovers_removed") == cleaned and left:
        row.problems.append(f"the restart did not remove the dead one's files {left}")


def crash_loop(suite: Suite) -> Row:
    row = Row("crash loop")
    rounds = 2 if suite.quick else 4
    with gateway_row(suite, row) as fgw:

        def body(prober: Prober) -> None:
            suite.redis.stop(keep_data=True)
            down_at = time.monotonic()  # stopped: it has exited
            for pid in ready_pids(fgw):
                os.kill(pid, signal.SIGKILL)  # every replacement now fails at boot
            try:
                poll(
                    lambda: any("no worker is ready" in s.body for s in prober.samples[-5:]),
                    15,
                    "the supervisor's 503",
                )
                poll(
                    lambda: f'"consecutive_crashes": {rounds}' in fgw.gw.logs(),
                    30,
                    f"{rounds} crash rounds",
                    0.05,
                )
            finally:
                suite.redis.start()
            back_at = time.monotonic()
            row.recovery_s = round(prober.first_ok_after(back_at, 30) - back_at, 3)
            fgw.wait_serving(2)
            during = prober.statuses((down_at, back_at))
            row.figures |= {
                "crash rounds before Redis came back": rounds,
                "outage (s)": round(back_at - down_at, 2),
                "prober statuses during the crash loop": during,
            }

        with_load(suite, fgw, row, {"no_worker", "redis_unavailable"}, body)
    row.judge()
    return row


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
