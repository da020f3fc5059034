"""``WorkerProcess`` with a real (trivial) child: what its exit is said to be."""

from __future__ import annotations

import subprocess
import sys

import pytest

from supervisor.workers.process import WorkerProcess


@pytest.mark.parametrize(
    ("was_ready", "error"),
    [
        (False, "exited with code 1 (CRASH) before it was ready"),
        (True, "exited with code 1 (CRASH) after it had been ready"),
    ],
)
def test_an_exit_says_whether_the_worker_had_been_ready(was_ready: bool, error: str) -> None:
    worker = WorkerProcess(generation=1, slot=0)
    worker.proc = subprocess.Popen([sys.executable, "-c", "import os; os._exit(1)"])
    if was_ready:
        worker.handle_message({"type": "ready"})
    worker.proc.wait()
    assert worker.poll()
    assert worker.error == error
