"""Every ```sh block of the README runs as printed and shows what the README says
(issue 13 §1, §6), through ``tests.doc_sessions``.

How, hermetically: each block runs as one bash session in a temporary directory that
holds ``.venv`` (a symlink to the venv running these tests) and a copy of
``examples/``, with its own HOME, XDG_STATE_HOME and XDG_RUNTIME_DIR. Only ports are
rewritten: the documented 8080 (server) and 9090 (metrics) become free ports picked at
run time, in the commands, in the expected output and in the copied example configs.

Command 1 (`python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/redis-gateway
run --profile dev`) is checked word for word; its last part is started by the test
(with ``--set server.port=P --set observability.metrics.port=M``, the rewrite above),
and the "Try it" and upstash-redis blocks run against it. Not run: the install part of
command 1 (it made the venv these tests run in; again it would need the network and a
minute) and command 2, `scripts/test` (the suite this test is part of). Any other block
must be one of the known ones, so a new snippet cannot go unchecked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.doc_sessions import (
    Block,
    mismatches,
    port_rewriter,
    run_session,
    session_env,
    sh_blocks,
)
from tests.helpers import free_port, wait_until
from tests.integration.conftest import http_get

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RUN_PART = ".venv/bin/redis-gateway run --profile dev"
COMMAND_1 = f"python3 -m venv .venv && .venv/bin/pip install -e . && {RUN_PART}"


@dataclass
class Workdir:
    path: Path
    env: dict[str, str]
    rewrite: Callable[[str], str]
    port: int
    metrics_port: int

    def check(self, block: Block, timeout: float = 60.0) -> None:
        steps = block.steps()
        outputs = run_session(steps, self.path, self.env, self.rewrite, timeout)
        problems = mismatches(steps, outputs, self.rewrite)
        assert not problems, "README.md:\n" + "\n".join(problems)


def block_with(first_command: str) -> Block:
    found = [b for b in sh_blocks(README) if b.steps() and b.steps()[0].command == first_command]
    assert len(found) == 1, f"README: no single ```sh block starting with {first_command!r}"
    return found[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    port, metrics_port = free_port(), free_port()
    rewrite = port_rewriter({8080: port, 9090: metrics_port})
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "examples").mkdir()
    for example in (ROOT / "examples").iterdir():
        (tmp_path / "examples" / example.name).write_text(rewrite(example.read_text()))
    return Workdir(tmp_path, session_env(tmp_path), rewrite, port, metrics_port)


@pytest.fixture
def command_1(workdir: Workdir) -> Iterator[subprocess.Popen[bytes]]:
    """The run part of command 1, on the picked ports, in the working directory."""
    assert COMMAND_1 in README
    args = [f"--set=server.port={workdir.port}"]
    args.append(f"--set=observability.metrics.port={workdir.metrics_port}")
    proc = subprocess.Popen(
        [*RUN_PART.split(), *args],
        cwd=workdir.path,
        env=workdir.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: http_get(workdir.port, "/readyz")[0] == 200, timeout=20)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_every_readme_block_is_known() -> None:
    firsts = [b.steps()[0].command.splitlines()[0] for b in sh_blocks(README)]
    assert firsts == [
        COMMAND_1,
        "curl localhost:8080/set/greeting/hello          # Upstash path form",
        ".venv/bin/pip install -q upstash-redis",
        "B=.venv/bin/redis-gateway",
        "cp examples/gateway.toml examples/gateway.dev.toml .",
    ]
    quick_start = sh_blocks(README)[0].steps()
    assert [s.command for s in quick_start] == [COMMAND_1, "scripts/test"]


def test_try_it_and_the_upstash_client_against_command_1(
    workdir: Workdir, command_1: subprocess.Popen[bytes]
) -> None:
    workdir.check(block_with("curl localhost:8080/set/greeting/hello          # Upstash path form"))
    workdir.check(block_with(".venv/bin/pip install -q upstash-redis"))
    assert command_1.poll() is None


def test_configuration_block(workdir: Workdir) -> None:
    workdir.check(block_with("B=.venv/bin/redis-gateway"))


def test_reload_block_as_one_terminal_session(workdir: Workdir) -> None:
    workdir.check(block_with("cp examples/gateway.toml examples/gateway.dev.toml ."))
    assert not (ROOT / "gateway.log").exists()
