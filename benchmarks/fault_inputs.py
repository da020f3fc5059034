"""The fault scenarios of `faults.py` that feed hostile inputs to a running gateway.

* ``reloads``: under load, invalid configs (syntax, misspelt secret keys holding a
  secret, broken API keys, rules across keys), configs whose workers cannot get ready
  (a ``redis.url`` with a password to a closed port) and valid ones; each reload must
  end as planned and nothing may fail. The config CLI (validate, show, diff, history,
  backups, reload, status) is run meanwhile, with an invalid file holding secrets too.
* ``http_fuzz``: ``benchmarks.http_fuzz.run_http_fuzz`` on each engine, auth off (the
  fuzz's honest request carries no credential); a hang is no answer nor close in 2 s.
* ``slowloris``: ``benchmarks.slowloris.Attack`` on each engine (idle connections,
  heads and bodies trickling in) while a prober and load clients (with their API key)
  must keep getting 200s; every attacking socket closed by the server in time.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.fault_gateway import FaultGateway
from benchmarks.fault_harness import HANG_SECONDS, Canaries, Row, poll
from benchmarks.fault_scenarios import PROBE_PATH, Suite, gateway_row, with_load
from benchmarks.fault_traffic import Load, Prober, merge_5xx
from benchmarks.gateway_process import Sections, merged
from benchmarks.http_fuzz import run_http_fuzz, scan_log
from benchmarks.slowloris import Attack
from supervisor.embedded_redis import free_port

EXPECTED = {
    "valid": "committed",
    "invalid": "invalid",
    "readiness": "readiness_failed",
}


def reload_plan(base: Sections, canaries: Canaries, closed_port: int) -> list[tuple[str, str, Any]]:
    """(kind, description, config) of each reload of one cycle, in order."""

    def changed(**sections: dict[str, Any]) -> Sections:
        return merged(base, {k.replace("__", "."): v for k, v in sections.items()})

    secret = canaries["unknown_key_value"]
    keys = base["auth"]["api_keys"]
    closed = f"127.0.0.1:{closed_port}"
    return [
        ("invalid", "TOML syntax error", "[server\nport = \n"),
        ("valid", "log level WARNING", changed(observability__logging={"level": "WARNING"})),
        ("invalid", "misspelt secret key auth.jwt_secrett", changed(auth={"jwt_secrett": secret})),
        (
            "readiness",
            "redis.url with a password, closed port",
            changed(redis={"url": f"redis://:{canaries['url_password']}@{closed}"}),
        ),
        (
            "invalid",
            "API key named 'bad name!'",
            changed(auth={"api_keys": [*keys, {"name": "bad name!", "key": secret}]}),
        ),
        ("valid", "request timeout 20 s", changed(server={"request_timeout_seconds": 20})),
        (
            "invalid",
            "heartbeat timeout ≤ interval",
            changed(supervisor={"heartbeat_interval_seconds": 2, "heartbeat_timeout_seconds": 1}),
        ),
        ("invalid", "redis.url port 99999", changed(redis={"url": "redis://127.0.0.1:99999"})),
        ("readiness", "redis.url -> closed port", changed(redis={"url": f"redis://{closed}"})),
        ("invalid", "server.workers = -1", changed(server={"workers": -1})),
        ("invalid", "misspelt redis.default_pasword", changed(redis={"default_pasword": secret})),
        ("valid", "back to the start", base),
    ]


def _cli_probes(fgw: FaultGateway, invalid: Sections, quick: bool) -> dict[str, str]:
    """What the config CLI prints, with an invalid file holding a secret and then with
    the gateway's own file back."""
    out: dict[str, str] = {}
    fgw.gw.write(invalid)
    out["config validate (invalid)"] = fgw.cli("config", "validate")
    out["reload -c (invalid)"] = fgw.cli("reload", inputs="config")
    if not quick:
        out["config show (invalid)"] = fgw.cli("config", "show")
        out["config diff (invalid)"] = fgw.cli("config", "diff", inputs="config")
    fgw.gw.write(fgw.gw.base)
    out["config show --sources --format json"] = fgw.cli(
        "config", "show", "--sources", "--format", "json"
    )
    out["config history"] = fgw.cli("config", "history", "--format", "json")
    if not quick:
        out["config validate"] = fgw.cli("config", "validate")
        out["config backups list"] = fgw.cli("config", "backups", "list")
        out["config backups show 1"] = fgw.cli("config", "backups", "show", "1")
        out["config diff"] = fgw.cli("config", "diff", inputs="config")
        out["status"] = fgw.cli("status", inputs="config")
    return out


def reloads(suite: Suite) -> Row:
    row = Row("reloads")
    count = 6 if suite.quick else 36
    outcomes: dict[str, int] = {}
    with gateway_row(suite, row, cli=True) as fgw:

        def body(prober: Prober) -> None:
            plan = reload_plan(fgw.gw.base, suite.canaries, free_port())
            for i in range(count):
                kind, what, config = plan[i % len(plan)]
                fgw.gw.write(config)
                outcome, _ = fgw.gw.reload()
                result = outcome["result"]
                outcomes[result] = outcomes.get(result, 0) + 1
                row.scan({f"reload reply #{i} ({what})": str(outcome)}, [suite.canaries])
                if result != EXPECTED[kind]:
                    row.problems.append(f"reload '{what}': {result}, expected {EXPECTED[kind]}")
                poll(lambda: not fgw.gw.status()["reload_in_progress"], 30, "reload done", 0.02)
            fgw.gw.write(fgw.gw.base)
            invalid = reload_plan(fgw.gw.base, suite.canaries, 1)[2][2]
            cli = _cli_probes(fgw, invalid, suite.quick)
            row.scan(cli, [suite.canaries])
            row.figures["config CLI commands"] = len(cli)

        with_load(suite, fgw, row, set(), body)
    row.figures["reloads by result"] = outcomes
    row.judge(recovery_target=None)
    return row


def http_fuzz(suite: Suite) -> Row:
    row = Row("malformed HTTP")
    cases = 300 if suite.quick else 3000
    for engine in ("uvicorn", "native"):
        extra: Sections = {"server": {"http_engine": engine}, "auth": {"enabled": False}}
        with gateway_row(suite, row, extra=extra, name=f"http-fuzz-{engine}") as fgw:
            report = run_http_fuzz("127.0.0.1", fgw.port, cases, seed=8, hang_seconds=HANG_SECONDS)
            findings = scan_log(fgw.gw.logs())
            row.requests += report.cases + report.honest_ok + report.honest_failed
            row.failed += report.honest_failed
            row.unexpected_5xx += report.five_xx
            row.problems += [f"{engine}: {line}" for line in report.bad[:5]]
            if report.honest_failed:
                row.problems.append(f"{engine}: {report.honest_failed} honest requests failed")
            if findings.error_lines:
                row.problems.append(f"{engine}: {findings.error_lines} error lines in the log")
            row.figures[f"{engine} outcomes"] = dict(sorted(report.outcomes.items()))
            row.figures[f"{engine} hangs"] = report.outcomes["hang"]
            row.figures[f"{engine} 'Invalid HTTP' log lines"] = findings.malformed_lines
    row.judge(recovery_target=None)
    return row


HEADER_TIMEOUT, REQUEST_TIMEOUT = 1.0, 3.0


def slowloris(suite: Suite) -> Row:
    row = Row("slowloris")
    sockets = 300 if suite.quick else 1500
    for engine in ("uvicorn",) if suite.quick else ("uvicorn", "native"):
        extra = {
            "server": {
                "http_engine": engine,
                "max_connections": 200,
                "max_pending_connections": 50,
                "request_header_timeout_seconds": HEADER_TIMEOUT,
                "request_timeout_seconds": REQUEST_TIMEOUT,  # bounds the slow bodies
            }
        }
        with gateway_row(suite, row, extra=extra, name=f"slowloris-{engine}") as fgw:
            _attack(suite, fgw, row, engine, sockets)
    row.judge(recovery_target=None)
    return row


def _attack(suite: Suite, fgw: FaultGateway, row: Row, engine: str, sockets: int) -> None:
    """``sockets`` idle or trickling heads and a third as many trickling bodies, then
    more in bursts, while honest clients are served."""
    suite.reset_counters()
    load = Load(fgw.port, fgw.auth, new=1, keepalive=1)
    attack = Attack(fgw.port)
    limit = REQUEST_TIMEOUT + 2.5
    try:
        with Prober(fgw.port, PROBE_PATH, fgw.auth) as prober:
            began = time.monotonic()
            attack.open(sockets)
            attack.open_slow_bodies(sockets // 3)
            for _ in range(5):
                attack.open(sockets // 30)
                attack.open_slow_bodies(sockets // 30)
            opened = time.monotonic() - began
            poll(lambda: attack.reap() == 0, limit + 10, "every attacking socket closed", 0.05)
        load.stop()
    finally:
        attack.stop()
        load.kill()
    failed_before = row.failed
    load.account(row, *suite.counters())
    prober.account(row)
    row.add_5xx(merge_5xx(load.fivexx(), prober.fivexx()), set())
    row.figures[f"{engine}: honest requests failed"] = row.failed - failed_before
    slowest = max(attack.closed_after, default=0.0)
    row.figures[f"{engine}: attacking sockets"] = len(attack.closed_after)
    row.figures[f"{engine}: opened in (s)"] = round(opened, 2)
    row.figures[f"{engine}: closed by the server within (s)"] = round(slowest, 2)
    if slowest > limit:
        row.problems.append(f"{engine}: an attacking socket stayed open {slowest:.1f} s")
