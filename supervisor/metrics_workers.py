"""The workers' side of the metrics endpoint: their prometheus-client multiprocess files.

Workers are separate interpreters in prometheus-client's multiprocess mode: each writes
one mmap file per metric type and pid into ``PROMETHEUS_MULTIPROC_DIR``, and the
supervisor's endpoint (``supervisor.metrics``, which re-exports ``MultiprocessDir``)
merges them at scrape time. This module owns that directory: creating it, what a
worker's exit does to it, and which files are safe to read.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading

import structlog
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from supervisor.runtime_files import metrics_dir_prefix, metrics_parent

log = structlog.get_logger("redis_gateway.metrics")

# Types whose samples outlive their process (gauges keep a per-pid meaning instead).
_FOLDED_TYPES = ("counter", "histogram", "summary")
# A sample file starts with an 8-byte "bytes used" header (prometheus_client.mmap_dict).
_MMAP_HEADER_BYTES = 8


class MultiprocessDir:
    """The directory workers write their multiprocess-mode samples to.

    Every worker process leaves one file per metric type (``counter_<pid>.db``, ...),
    and every reload starts new workers, so a long-lived supervisor would collect
    thousands of files that each scrape reads. ``worker_exited`` therefore folds a
    dead worker's counters and histograms into one ``<type>_archive.db`` per type
    (totals unchanged), and drops its live gauges. Folding and scraping take the same
    lock, so a scrape never sees a worker's samples twice or not at all.
    """

    def __init__(self, parent: str | None = None) -> None:
        # tmpfs is the right place for mmap'ed sample files: systemd's RuntimeDirectory
        # (/run/redis-gateway) if we have one, else the temp dir. The name carries our
        # pid: the next supervisor removes it if we die without cleaning up.
        self.path = tempfile.mkdtemp(prefix=metrics_dir_prefix(), dir=parent or metrics_parent())
        self.lock = threading.Lock()

    def env(self) -> dict[str, str]:
        """Environment entries for a worker process."""
        return {"PROMETHEUS_MULTIPROC_DIR": self.path}

    def worker_exited(self, pid: int) -> None:
        """A worker was reaped: drop its live gauges, fold its counters into the archive."""
        with self.lock:
            try:
                # prometheus_client's multiprocess module has no annotations.
                mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]
                for file in glob.glob(os.path.join(self.path, f"*_{pid}.db")):
                    if os.path.getsize(file) < _MMAP_HEADER_BYTES:
                        os.remove(file)  # created, never written (see readable_sample_files)
                for typ in _FOLDED_TYPES:
                    self._fold(typ, pid)
            except Exception as exc:  # e.g. a corrupt file: metrics must not stop the arbiter
                log.warning("metrics.worker_cleanup_failed", worker_pid=pid, error=str(exc))

    def _fold(self, typ: str, pid: int) -> None:
        dead = os.path.join(self.path, f"{typ}_{pid}.db")
        if not os.path.exists(dead):
            return
        archive = os.path.join(self.path, f"{typ}_archive.db")
        sources = [f for f in (archive, dead) if os.path.exists(f)]
        # accumulate=False keeps histogram buckets per-bucket, as they are stored.
        merged = MultiProcessCollector.merge(sources, accumulate=False)  # type: ignore[no-untyped-call]
        tmp = os.path.join(self.path, f".{typ}_archive.tmp")  # not *.db: never scraped
        out = MmapedDict(tmp)  # type: ignore[no-untyped-call]
        try:
            for metric in merged:
                for sample in metric.samples:
                    key = mmap_key(
                        metric.name,
                        sample.name,
                        list(sample.labels),
                        list(sample.labels.values()),
                        metric.documentation,
                    )
                    out.write_value(key, sample.value, 0.0)  # type: ignore[no-untyped-call]
        finally:
            out.close()  # type: ignore[no-untyped-call]
        os.replace(tmp, archive)
        os.remove(dead)

    def cleanup(self) -> None:
        """Remove the directory (at supervisor exit)."""
        shutil.rmtree(self.path, ignore_errors=True)


def readable_sample_files(path: str) -> list[str]:
    """The ``*.db`` files worth reading: not the 0-byte ones.

    prometheus-client creates a file before sizing it, and reading it in that window
    raises ``struct.error`` for the whole scrape; a worker killed in that window leaves
    the empty file behind for good (client_python#1199). An empty file holds no
    samples, so skipping it loses nothing.
    """
    files = []
    for file in glob.glob(os.path.join(path, "*.db")):
        try:
            if os.path.getsize(file) >= _MMAP_HEADER_BYTES:
                files.append(file)
        except FileNotFoundError:
            continue
    return files
