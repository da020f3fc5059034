"""The fault suite: real processes on 127.0.0.1, broken on purpose, one row per scenario.

    .venv/bin/python benchmarks/faults.py [--quick] [--json out.json] [--only NAME ...]

Scenarios (``SCENARIOS``; each a function of ``Suite`` returning one ``Row``):

| name | what is done (module) |
|---|---|
| worker-sigkill | under load, SIGKILL one worker, then every worker (fault_scenarios) |
| redis-restart | under load, Redis stopped and started again on its port (fault_scenarios) |
| supervisor-sigkill | under load, SIGKILL the supervisor, then `run` again (fault_scenarios) |
| crash-loop | Redis gone, every worker killed: boot failures; Redis back (fault_scenarios) |
| reloads | invalid, readiness-failing, valid reloads under load; config CLI (fault_inputs) |
| config-fuzz | ≥ 2,000 fuzzed configs in process, ~50 through reload/run (fault_config_fuzz) |
| http-fuzz | ≥ 3,000 malformed HTTP requests per engine (fault_inputs) |
| slowloris | idle and trickling connections, honest clients served (fault_inputs) |

Every gateway holds distinct canary secrets (secrets dir, env, ``--set``, API keys in
the file and in a key file, the JWT secret, the Redis password; URL passwords and
misspelt secret keys in reloads), searched for in every output: the log of every
process, `status --json`, ``/metrics``, ``/admin/*``, error replies, the workers'
environments, the state directory, the config CLI. After each clean stop nothing may be
left: no process, nothing in the gateway's runtime and temp dir.

Targets (exit 0 only when every row meets them): 0 acknowledged writes lost (a write
may be applied without a reply only when it got none), 0 tracebacks, 0 leaks, 0
unexpected 5xx (documented: 503 while Redis is down or no worker is ready, 504 on a
request timeout), no request waiting over 2 s, recovery ≤ 1 s after the cause went away
(the supervisor's cold restart is reported, not judged), plus each scenario's own checks.
Each scenario has a deadline; the whole run takes a few minutes on 2 CPUs (``--quick``:
about a minute, smaller counts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fault_config_fuzz import config_fuzz  # noqa: E402
from benchmarks.fault_harness import Canaries, Row, SuiteRedis, rmtree_quiet  # noqa: E402
from benchmarks.fault_inputs import http_fuzz, reloads, slowloris  # noqa: E402
from benchmarks.fault_scenarios import (  # noqa: E402
    Suite,
    crash_loop,
    redis_restart,
    supervisor_sigkill,
    worker_sigkill,
)

Scenario = Callable[[Suite], Row]
#: name -> (function, deadline in seconds for the full run, for --quick)
SCENARIOS: dict[str, tuple[Scenario, float, float]] = {
    "worker-sigkill": (worker_sigkill, 90, 60),
    "redis-restart": (redis_restart, 90, 60),
    "supervisor-sigkill": (supervisor_sigkill, 120, 90),
    "crash-loop": (crash_loop, 120, 90),
    "reloads": (reloads, 180, 90),
    "config-fuzz": (config_fuzz, 240, 90),
    "http-fuzz": (http_fuzz, 150, 60),
    "slowloris": (slowloris, 120, 60),
}


class ScenarioDeadline(Exception):
    """A scenario ran past its deadline (raised in the main thread by SIGALRM)."""


def _deadline(signum: int, frame: FrameType | None) -> None:
    raise ScenarioDeadline("the scenario ran past its deadline")


def run_one(name: str, suite: Suite, deadline: float) -> Row:
    """One scenario under a deadline; an escaped exception becomes a failed row."""
    began = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _deadline)
    signal.setitimer(signal.ITIMER_REAL, deadline)
    try:
        row = SCENARIOS[name][0](suite)
    except Exception as exc:
        row = Row(name, problems=[f"{type(exc).__name__}: {exc}"[:400]])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    row.figures["deadline (s)"] = deadline
    row.seconds = round(time.monotonic() - began, 1)
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


COLUMNS = (
    ("scenario", "scenario"),
    ("requests", "requests"),
    ("failed", "failed"),
    ("writes acked", "writes_acked"),
    ("writes lost", "writes_lost"),
    ("applied, no reply / unanswered", None),
    ("recovery (s)", "recovery_s"),
    ("longest wait (s)", "longest_wait_s"),
    ("tracebacks", "tracebacks"),
    ("secret leaks", "leaks"),
    ("left behind", "left_behind"),
    ("5xx documented / unexpected", None),
    ("time (s)", "seconds"),
    ("verdict", None),
)


def table(rows: list[Row]) -> str:
    """The markdown table of figures, then each row's own figures and problems."""
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = []
        for title, attr in COLUMNS:
            if attr is not None:
                cells.append(_cell(getattr(row, attr)))
            elif title.startswith("applied"):
                cells.append(f"{row.unacked_applied} / {row.unanswered_writes}")
            elif title.startswith("5xx"):
                cells.append(f"{row.documented_5xx} / {row.unexpected_5xx}")
            else:
                cells.append("pass" if row.ok else "**FAIL**")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for row in rows:
        figures = ", ".join(f"{k}: {_cell(v)}" for k, v in row.figures.items())
        lines.append(f"- **{row.scenario}**: {figures}")
        lines += [f"  - PROBLEM: {p}" for p in row.problems]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="these scenarios")
    parser.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(SCENARIOS)
    root = Path(tempfile.mkdtemp(prefix="rg-faults-"))
    canaries = Canaries.fresh()
    began, load_before = time.monotonic(), os.getloadavg()
    suite_redis = SuiteRedis(canaries["redis_password_env"])
    suite = Suite(root, canaries, suite_redis, args.quick)
    rows: list[Row] = []
    try:
        for name in names:
            _, full, quick = SCENARIOS[name]
            deadline = quick if args.quick else full
            print(f"== {name} (deadline {deadline:.0f} s)", file=sys.stderr, flush=True)
            rows.append(run_one(name, suite, deadline))
            verdict = "pass" if rows[-1].ok else "FAIL"
            print(f"   {verdict} in {rows[-1].seconds} s", file=sys.stderr, flush=True)
    finally:
        suite_redis.stop(keep_data=False)
    ok = all(row.ok for row in rows)
    report = {
        "quick": args.quick,
        "ok": ok,
        "wall_seconds": round(time.monotonic() - began, 1),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": [row.as_dict() for row in rows],
    }
    print(table(rows))
    print(
        f"\nwall {report['wall_seconds']} s on {report['cpus']} CPUs; load average before "
        f"{report['loadavg_before']}, after {report['loadavg_after']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if ok and not args.keep:
        rmtree_quiet(root)
    else:
        print(f"work dir (configs, logs): {root}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
