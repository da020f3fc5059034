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


def test_client_triggered_uvicorn_warnings_are_throttled(tmp_path: Path) -> None:
    # One line per malformed request used to flood the logs ("Invalid HTTP request
    # received." from uvicorn's httptools/h11 protocols and from the native engine).
    path = tmp_path / "gw.log"
    wlog.configure_logging(LoggingConfig(output=str(path), level="INFO"))
    uvicorn_log = logging.getLogger("uvicorn.error")
    for _ in range(500):
        uvicorn_log.warning("Invalid HTTP request received.")
        uvicorn_log.warning("Exceeded concurrency limit.")
    uvicorn_log.error("Exception in ASGI application\n")  # errors are never held back
    logging.getLogger("gateway").warning("not uvicorn's: %s", "kept")
    logging.getLogger("gateway").warning("not uvicorn's: %s", "kept")
    messages = [e["message"] for e in lines(path)]
    assert messages == [
        "Invalid HTTP request received.",
        "Exceeded concurrency limit.",
        "Exception in ASGI application\n",
        "not uvicorn's: kept",
        "not uvicorn's: kept",
    ]


def test_the_next_line_after_the_interval_says_how_many_were_held_back() -> None:
    now = [0.0]
    throttle = wlog.Throttle(10.0, clock=lambda: now[0])
    assert throttle.admit("k") == 0
    assert [throttle.admit("k") for _ in range(3)] == [None, None, None]
    assert throttle.admit("other") == 0  # keys are independent
    now[0] = 9.9
    assert throttle.admit("k") is None
    now[0] = 10.0
    assert throttle.admit("k") == 4
    assert throttle.admit("k") is None

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(wlog.RepeatedWarnings(wlog.Throttle(10.0, clock=lambda: now[0])))
    logger = logging.getLogger("uvicorn.error")
    for _ in range(3):
        handler.handle(logger.makeRecord(logger.name, logging.WARNING, "", 0, "bad", (), None))
    now[0] = 25.0
    handler.handle(logger.makeRecord(logger.name, logging.WARNING, "", 0, "bad", (), None))
    assert [getattr(r, "similar_suppressed", None) for r in records] == [0, 2]


def test_the_suppressed_count_reaches_the_json_line(tmp_path: Path) -> None:
    path = tmp_path / "gw.log"
    wlog.configure_logging(LoggingConfig(output=str(path), level="INFO"))
    record = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error", logging.WARNING, "", 0, "Invalid HTTP request received.", (), None
    )
    record.similar_suppressed = 41
    logging.getLogger().handlers[0].emit(record)
    assert lines(path)[-1]["similar_suppressed"] == 41
