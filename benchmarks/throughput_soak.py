"""The memory soak: ``total`` requests through one gateway in ``samples`` wrk runs of
equal size, the RSS of the supervisor and of each worker sampled before the load and
after every run (psutil).

Flat means: after the first run (which warms caches, connection buffers and the
allocator's arenas), every later sample of a process stays within ``tolerance_mb``
(± 2 MB) of that first warm sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.throughput_procs import rss_mb, serving_pids, worker_pids
from benchmarks.throughput_wrk import cycling_script, run_wrk

#: What the soak sends, in turn: both protocols, reads and writes over 1,000 keys.
SOAK_PATHS = [
    "/get/bench:key",
    "/set/bench:soak:%d/soak-value",
    "/webdis/GET/bench:key",
    "/webdis/SET/bench:soak:%d/soak-value",
    "/get/bench:soak:%d",
]


@dataclass
class Sample:
    """RSS (MB) of every process after ``requests`` requests (``standby_mb``: the warm
    standby interpreters the supervisor keeps for reloads, which serve nothing)."""

    requests: int
    supervisor_mb: float
    workers_mb: dict[int, float]
    standby_mb: dict[int, float] = field(default_factory=dict)


@dataclass
class Soak:
    """The curve, and what it says."""

    samples: list[Sample] = field(default_factory=list)
    tolerance_mb: float = 2.0
    errors: int = 0
    non_2xx: int = 0
    rps: list[float] = field(default_factory=list)

    def series(self) -> dict[str, list[float]]:
        """RSS per process over the samples: ``supervisor``, ``worker <pid>``."""
        out = {"supervisor": [s.supervisor_mb for s in self.samples]}
        pids = sorted({pid for s in self.samples for pid in s.workers_mb})
        for pid in pids:
            out[f"worker {pid}"] = [s.workers_mb.get(pid, math.nan) for s in self.samples]
        standbys = sorted({pid for s in self.samples for pid in s.standby_mb})
        for pid in standbys:
            out[f"standby {pid}"] = [s.standby_mb.get(pid, math.nan) for s in self.samples]
        return out

    def drift_mb(self) -> dict[str, float]:
        """Per process: the largest distance of a later sample from the first warm one."""
        drift = {}
        for name, values in self.series().items():
            if name.startswith("standby"):  # started after boot; serves nothing
                continue
            warm = values[1:] if len(values) > 1 else values
            if any(math.isnan(v) for v in warm):  # appeared or vanished: not flat
                drift[name] = math.inf
                continue
            drift[name] = max(abs(v - warm[0]) for v in warm)
        return drift

    def flat(self) -> bool:
        """Every process within ± ``tolerance_mb`` of its first warm sample (NaN: a
        process appeared or vanished, which is not flat)."""
        return all(d <= self.tolerance_mb for d in self.drift_mb().values())


def sample(supervisor_pid: int, socket_path: Path, requests: int) -> Sample:
    """The RSS of the supervisor, of its workers and of its standbys now."""
    serving = serving_pids(socket_path)
    children = worker_pids(supervisor_pid)
    return Sample(
        requests,
        rss_mb(supervisor_pid),
        {pid: rss_mb(pid) for pid in children if pid in serving},
        {pid: rss_mb(pid) for pid in children if pid not in serving},
    )


def run_soak(
    base: str,
    supervisor_pid: int,
    socket_path: Path,
    workdir: Path,
    total: int,
    samples: int,
    connections: int,
    threads: int,
) -> Soak:
    """``total`` requests to ``base`` in about ``samples`` wrk runs, RSS after each.

    wrk runs for whole seconds, so each run lasts the time ``total / samples`` requests
    took at the rate of the run before (the first run: 2 s); the table shows the
    request counts actually reached.
    """
    per_run = max(1, total // samples)
    script = workdir / "soak.lua"
    script.write_text(cycling_script(SOAK_PATHS))
    soak = Soak()
    soak.samples.append(sample(supervisor_pid, socket_path, 0))
    done, seconds = 0, 2
    while done < total:
        result = run_wrk("soak", base, seconds, connections, threads, str(script))
        done += result.requests
        soak.errors += result.errors
        soak.non_2xx += result.non_2xx
        soak.rps.append(result.rps)
        soak.samples.append(sample(supervisor_pid, socket_path, done))
        wanted = min(per_run, total - done)
        seconds = max(1, min(120, round(wanted / max(result.rps, 1.0))))
    return soak


def format_soak(soak: Soak) -> list[str]:
    """The curve as a compact table, then the verdict per process."""
    series = soak.series()
    names = list(series)
    lines = ["requests" + "".join(f"{n:>16}" for n in names)]
    for i, s in enumerate(soak.samples):
        lines.append(f"{s.requests:>9}" + "".join(f"{series[n][i]:>16.1f}" for n in names))
    drift = soak.drift_mb()
    verdict = "flat" if soak.flat() else "NOT flat"
    lines.append(
        f"verdict: {verdict} (within ±{soak.tolerance_mb:g} MB of the first warm sample); "
        + ", ".join(f"{n} max drift {d:.1f} MB" for n, d in drift.items())
    )
    lines.append(f"soak errors {soak.errors}, non-2xx {soak.non_2xx}")
    return lines
