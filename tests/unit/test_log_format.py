"""Logs worth reading (issue 13 §3): the dev profile's console format, library noise
kept at WARNING, problems as text, and every line naming the process that wrote it."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import gateway_worker.observability.logging as wlog
from gateway_worker.config import LoggingConfig
from supervisor.config import ConfigInputs, load_config
from supervisor.config.errors import Problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    if wlog._sink is not None:
        wlog._sink.close()
    wlog._sink = None
    structlog.configure(**saved)
    root.handlers, root.level = handlers, level


def test_the_dev_profile_logs_in_the_console_format_and_prod_in_json(tmp_path: Path) -> None:
    main = tmp_path / "gateway.toml"
    main.write_text(
        '[redis]\nurl = "redis://127.0.0.1:6379"\n[auth]\nenabled = true\n'
        '[[auth.api_keys]]\nname = "ci"\nkey = "k3y-for-a-test-of-log-formats-0123456789"\n'
    )
    formats = {}
    for profile in ("dev", "staging", "prod"):
        inputs = ConfigInputs(config_path=main, profile=profile, env={})
        formats[profile] = load_config(inputs).config.observability.logging.format
    assert formats == {"dev": "pretty", "staging": "json", "prod": "json"}


def test_console_lines_start_with_the_writer_and_render_problems_as_text(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    settings = LoggingConfig(output=str(path), format="pretty")
    wlog.configure_logging(settings, process="worker", pid=42, generation=3, slot=1)
    problem = Problem("server.port", "file gateway.toml:2", "Input should be a valid integer")
    structlog.get_logger("t").error("reload.failed", errors=[problem], generation=3)
    line = path.read_text()
    assert "[worker 1 gen 3 42]" in line
    assert "Problem(" not in line
    assert (
        "errors='server.port: Input should be a valid integer (from file gateway.toml:2)'" in line
    )
    assert "\x1b[" not in line  # a file is no terminal: no colours


def test_a_supervisor_line_about_a_worker_keeps_the_workers_fields(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    wlog.configure_logging(LoggingConfig(output=str(path), format="pretty"), process="supervisor")
    structlog.get_logger("t").info("worker.exited", worker_pid=7, generation=2, slot=0)
    line = path.read_text()
    assert "[supervisor]" in line and "generation=2" in line and "worker_pid=7" in line


def test_library_debug_lines_stay_out_at_debug_level_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    wlog.configure_logging(LoggingConfig(output=str(path), level="DEBUG"), process="t")
    logging.getLogger("watchdog.observers.inotify_buffer").debug("in-event %s", "x")
    logging.getLogger("uvicorn.error").warning("a warning still shows")
    structlog.get_logger("t").debug("own.debug")
    text = path.read_text()
    assert "in-event" not in text
    assert "a warning still shows" in text and "own.debug" in text
    settings = LoggingConfig(output=str(path), level="DEBUG", library_level="DEBUG")
    wlog.configure_logging(settings, process="t")
    logging.getLogger("watchdog.observers.inotify_buffer").debug("in-event %s", "y")
    assert "in-event y" in path.read_text()


def _log_calls_with_pid(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
            and any(k.arg in ("pid", "process") for k in node.keywords)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_supervisor_events_never_pass_pid_the_writers_own_field() -> None:
    """``pid`` and ``process`` name the writer; an event about a worker says
    ``worker_pid`` (a ``pid=`` there made a worker's pid read as the supervisor's)."""
    offenders = [
        hit
        for path in sorted((ROOT / "supervisor").rglob("*.py"))
        for hit in _log_calls_with_pid(path)
    ]
    assert offenders == []
