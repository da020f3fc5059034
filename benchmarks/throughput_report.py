"""What the throughput benchmark prints, and its ``--json`` document."""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from typing import Any

from benchmarks.throughput_soak import Soak, format_soak
from benchmarks.throughput_targets import Target, reference
from benchmarks.throughput_wrk import Result

COST_TARGET_PERCENT = 10.0


def commands_per_s(target: Target, result: Result) -> float:
    return result.rps * target.commands


def vs_webdis(target: Target, results: dict[str, Result], by_name: dict[str, Target]) -> float:
    """This row's rate over its Webdis row's: commands/s (the same for one-command rows)."""
    ref = reference(target)
    if ref not in results:
        return math.nan
    mine = commands_per_s(target, results[target.name])
    theirs = commands_per_s(by_name[ref], results[ref])
    return mine / theirs if theirs else math.nan


def costs(targets: list[Target], results: dict[str, Result]) -> dict[str, dict[str, float]]:
    """Per cost row: extra CPU per request and lost req/s against its baseline, in %."""
    out = {}
    for target in targets:
        if target.baseline is None or target.baseline not in results:
            continue
        mine, base = results[target.name], results[target.baseline]
        out[target.name] = {
            "cpu_percent": (mine.cpu_us - base.cpu_us) / base.cpu_us * 100,
            "rps_percent": (base.rps - mine.rps) / base.rps * 100,
        }
    return out


def print_rounds(targets: list[Target], runs: dict[str, list[Result]]) -> None:
    print("\nreq/s per round:")
    for t in targets:
        print(f"  {t.name:<30}" + " ".join(f"{r.rps:>8.0f}" for r in runs[t.name]))


def print_rows(targets: list[Target], results: dict[str, Result], header: str) -> None:
    by_name = {t.name: t for t in targets}
    print(f"\n{header}")
    print(
        f"{'target':<30}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'non2xx':>7}{'errors':>7}"
        f"{'vs webdis':>10}{'CPU us/req':>11}{'MB/s':>8}{'cmd/s':>9}  split"
    )
    for t in targets:
        r = results[t.name]
        print(
            f"{t.name:<30}{r.rps:>9.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{r.non_2xx:>7}"
            f"{r.errors:>7}{vs_webdis(t, results, by_name):>9.2f}x{r.cpu_us:>11.1f}"
            f"{r.bytes_per_s / 1e6:>8.1f}{commands_per_s(t, r):>9.0f}  {r.split}"
        )
    print(
        "CPU us/req: server CPU time (the webdis process, or all gateway workers) per "
        "request served (a PIPE100 request is 100 commands; GETx16 counts responses).\n"
        "MB/s: response bytes received by wrk, headers included (10^6 bytes). vs webdis: "
        "commands/s over the Webdis row of the same load (the plain GET for +auth/+ratelimit).\n"
        "split: wrk's connections held by each gateway worker mid-run, busiest first (they "
        "spread unevenly: benchmarks/accept_balance.py)."
    )
    cost = costs(targets, results)
    if cost:
        print(
            "\ncost against the same engine's plain upstash GET "
            f"(target <= {COST_TARGET_PERCENT:g}%):"
        )
        for name, c in cost.items():
            print(
                f"  {name:<32} CPU us/req {c['cpu_percent']:+6.1f}%   "
                f"req/s {-c['rps_percent']:+6.1f}%"
            )


def print_soak(soak: Soak, header: str) -> None:
    print(f"\n{header}")
    for line in format_soak(soak):
        print(line)


def document(
    meta: dict[str, Any],
    targets: list[Target],
    runs: dict[str, list[Result]],
    results: dict[str, Result],
    soak: Soak | None,
) -> dict[str, Any]:
    """Everything measured, for ``--json``."""
    by_name = {t.name: t for t in targets}
    rows = []
    for t in targets:
        row = asdict(results[t.name])
        row.update(
            op=t.op,
            server=t.server,
            commands_per_s=commands_per_s(t, results[t.name]),
            vs_webdis=vs_webdis(t, results, by_name),
            rounds_rps=[r.rps for r in runs[t.name]],
        )
        rows.append(row)
    out: dict[str, Any] = {
        "meta": {**meta, "cpus": os.cpu_count()},
        "rows": rows,
        "costs": costs(targets, results),
    }
    if soak is not None:
        out["soak"] = {
            "samples": [asdict(s) for s in soak.samples],
            "drift_mb": soak.drift_mb(),
            "flat": soak.flat(),
            "tolerance_mb": soak.tolerance_mb,
            "errors": soak.errors,
            "non_2xx": soak.non_2xx,
        }
    return out
