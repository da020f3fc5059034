"""gateway_worker.observability.logging: file output, reopen after rotation, hot reload,
redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import gateway_worker.observability.logging as wlog
from gateway_worker.config import LoggingConfig


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


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_output_reopen_and_hot_reload(tmp_path: Path) -> None:
    path = tmp_path / "gw.log"
    wlog.configure_logging(LoggingConfig(output=str(path), level="INFO"), process="test")
    log = structlog.get_logger("t")
    log.info("first", password="hunter2")
    log.debug("hidden")
    path.rename(tmp_path / "gw.log.1")  # logrotate
    wlog.reopen_logs()
    log.info("second")
    logging.getLogger("library").warning("from %s", "stdlib")
    rotated = lines(tmp_path / "gw.log.1")
    assert [e["event"] for e in rotated] == ["first"]
    assert rotated[0]["password"] == wlog.MASK and rotated[0]["process"] == "test"
    current = lines(path)
    assert [e["event"] for e in current] == ["second", "library.log"]
    assert current[1]["message"] == "from stdlib"

    wlog.configure_logging(LoggingConfig(output=str(path), level="DEBUG"), process="test")
    structlog.get_logger("t").debug("now visible")
    assert lines(path)[-1]["event"] == "now visible"
    assert "hunter2" not in path.read_text() + (tmp_path / "gw.log.1").read_text()


def test_pretty_format_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    wlog.configure_logging(LoggingConfig(output="stderr", format="pretty"))
    structlog.get_logger("t").warning("pretty.event", token="abc")
    err = capsys.readouterr().err
    assert "pretty.event" in err and "abc" not in err and wlog.MASK in err
