"""docs/tutorial.md, run as the reader would and checked against what it shows
(issue 13 §7), through ``tests.doc_sessions``.

How, hermetically: all its ```sh blocks but the install run as ONE bash session (the
tutorial is one terminal: `cd`, `$KEY` and the `%1` job carry over) in a temporary
directory holding ``.venv``, a symlink to the venv running these tests (what the
install step makes), with its own HOME, XDG_STATE_HOME and XDG_RUNTIME_DIR. Only ports
are rewritten: the documented 8080 (server), 9090 (metrics) and 6379 (Redis) become
free ports picked at run time, in the commands and in the expected output alike. The
Redis the tutorial starts is killed at the end even when a step failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.doc_sessions import mismatches, port_rewriter, run_session, session_env, sh_blocks
from tests.helpers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e ."


def test_the_tutorial_works_as_printed(tmp_path: Path) -> None:
    blocks = sh_blocks(TUTORIAL)
    assert [s.command for s in blocks[0].steps()] == [INSTALL]  # not run: made our venv
    steps = [step for block in blocks[1:] for step in block.steps()]
    rewrite = port_rewriter({8080: free_port(), 9090: free_port(), 6379: free_port()})
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    try:
        outputs = run_session(steps, tmp_path, session_env(tmp_path), rewrite, timeout=90)
    finally:
        _kill_from(tmp_path / "tutorial" / "redis.pid")
    problems = mismatches(steps, outputs, rewrite)
    assert not problems, "docs/tutorial.md:\n" + "\n".join(problems)


def _kill_from(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
