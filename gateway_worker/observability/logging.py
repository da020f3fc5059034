"""structlog setup shared by the supervisor and the workers.

* Format: JSON lines (``json``) or structlog's ``ConsoleRenderer`` (``pretty``, the dev
  profile's default; coloured when the sink is a terminal), where each line starts
  with who wrote it (``[supervisor 41]``, ``[worker 0 gen 3 4242]``,
  ``[embedded_redis 40]``) and a list of texts (config problems) reads as text.
* Every event names the process that wrote it: ``process`` (``supervisor``,
  ``worker``, ``embedded_redis``) and ``pid``, plus ``generation`` and ``slot`` for a
  worker (bound with ``configure_logging(..., **context)``; an event's own fields win).
* Output: ``stdout``, ``stderr`` or a file path (opened in append mode, so several
  processes can share it; ``reopen()`` after logrotate, on SIGUSR1).
* Secrets never reach a sink: ``redact_secrets`` masks ``SecretStr`` values and the
  values of keys whose name says they are secret, in every event, recursively.
* Hot reload: call ``configure_logging`` again with the new settings; the stream is
  only reopened when the output changed.
* Lines a client can trigger at will (uvicorn's "Invalid HTTP request received." and
  its other per-request warnings, in both engines) are throttled: at most one per
  message every ``REPEAT_INTERVAL_SECONDS``, the next one carrying ``similar_suppressed``
  (``Throttle``, ``RepeatedWarnings``), so a flood of garbage cannot flood the logs.

The stdlib root logger (uvicorn, redis-py, watchdog) is routed into the same sink, so
every line a process writes has the same format, at ``library_level`` (WARNING by
default: watchdog's inotify DEBUG lines and uvicorn's INFO chatter are not wanted at
``level = "DEBUG"``).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import TextIO

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from gateway_worker.config import LoggingConfig

MASK = "**********"
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api_?key|authorization|credential|private_?key)",
    re.IGNORECASE,
)


def redact_value(key: str, value: object) -> object:
    """``value`` with every secret in it masked (by type, or by its key's name)."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if value is not None and _SECRET_KEY.search(key) and not isinstance(value, bool):
        return MASK
    return value


def redact_secrets(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field of an event."""
    return {k: (v if k == "event" else redact_value(k, v)) for k, v in event.items()}


class ReopenableStream:
    """A text sink that is stdout, stderr or a file that can be reopened."""

    def __init__(self, output: str) -> None:
        self.output = output
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._open()

    def _open(self) -> None:
        if self.output not in ("stdout", "stderr"):
            self._file = open(self.output, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - long-lived sink, closed in reopen()/close()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    @property
    def stream(self) -> TextIO:
        if self._file is not None:
            return self._file
        return sys.stderr if self.output == "stderr" else sys.stdout

    def write(self, text: str) -> None:
        with self._lock:
            stream = self.stream
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed/broken sink must never take the process down

    def reopen(self) -> None:
        """Close and reopen a file output (after logrotate moved it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._open()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _StreamLogger:
    """Minimal structlog logger writing rendered lines to the shared stream."""

    def __init__(self, sink: ReopenableStream) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


#: At most one line per repeated client-triggered message in this many seconds.
REPEAT_INTERVAL_SECONDS = 10.0


class Throttle:
    """At most one event per key every ``interval`` seconds.

    ``admit(key)`` returns None for an event to drop, else how many events of that key
    were dropped since the last one admitted (so the line that is written can say so).
    """

    __slots__ = ("_clock", "_interval", "_state")

    def __init__(
        self, interval: float = REPEAT_INTERVAL_SECONDS, clock: Callable[[], float] | None = None
    ) -> None:
        self._interval = interval
        self._clock = clock or time.monotonic
        #: key -> (when the last event was admitted, events dropped since)
        self._state: dict[Hashable, tuple[float, int]] = {}

    def admit(self, key: Hashable) -> int | None:
        now = self._clock()
        last = self._state.get(key)
        if last is not None and now - last[0] < self._interval:
            self._state[key] = (last[0], last[1] + 1)
            return None
        self._state[key] = (now, 0)
        return 0 if last is None else last[1]


class RepeatedWarnings(logging.Filter):
    """Throttles the warnings of uvicorn's loggers (``uvicorn.error``, also used by the
    native engine), which are per request and client-triggered: "Invalid HTTP request
    received.", "Exceeded concurrency limit.", "Unsupported upgrade request."..."""

    def __init__(self, throttle: Throttle | None = None) -> None:
        super().__init__()
        self._throttle = throttle or Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not record.name.startswith("uvicorn"):
            return True
        suppressed = self._throttle.admit((record.name, record.msg))
        if suppressed is None:
            return False
        record.similar_suppressed = suppressed
        return True


class _Handler(logging.Handler):
    """Routes stdlib logging (uvicorn, libraries) into structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string in a library must not crash us
            message = str(record.msg)
        fields: dict[str, object] = {"message": message}
        suppressed = getattr(record, "similar_suppressed", None)
        if suppressed is not None:
            fields["similar_suppressed"] = suppressed
        if record.exc_info and record.exc_info[0] is not None:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        structlog.get_logger(record.name).log(record.levelno, "library.log", **fields)


_sink: ReopenableStream | None = None


def configure_logging(settings: LoggingConfig, **context: object) -> None:
    """(Re)configure structlog and stdlib logging; ``context`` is bound to every event."""
    global _sink  # noqa: PLW0603 - one sink per process, swapped on hot reload
    if _sink is None or _sink.output != settings.output:
        old = _sink
        _sink = ReopenableStream(settings.output)
        if old is not None:
            old.close()
    sink = _sink
    level = logging.getLevelName(settings.level)
    rendering: list[Processor] = (
        [structlog.processors.JSONRenderer()]
        if settings.format == "json"
        else [
            console_fields,
            structlog.dev.ConsoleRenderer(colors=sink.isatty()),
        ]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _bind(context),
            redact_secrets,
            structlog.processors.format_exc_info,
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _StreamLogger(sink),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    handler = _Handler()
    handler.addFilter(RepeatedWarnings())
    root.handlers = [handler]
    root.setLevel(max(level, logging.getLevelName(settings.library_level)))
    # uvicorn's own loggers propagate to root; its access log stays off.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def console_fields(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """For the console format: the writer as one prefix (structlog's ``logger``
    column: ``[worker 0 gen 3 4242]``), and lists of texts (config problems) as text."""
    process = event.pop("process", None)
    pid = event.pop("pid", None)
    parts = [str(process or "?")]
    if process == "worker":  # elsewhere generation and slot name a worker spoken of
        if "slot" in event:
            parts.append(str(event.pop("slot")))
        if "generation" in event:
            parts.append(f"gen {event.pop('generation')}")
    if pid is not None:
        parts.append(str(pid))
    event["logger"] = " ".join(parts)
    for key, value in event.items():
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            event[key] = "; ".join(str(v) for v in value)
        elif isinstance(value, str) and type(value) is not str:
            event[key] = str(value)  # a str subclass (Problem) reads as its text
    return event


def _bind(context: dict[str, object]) -> Processor:
    def processor(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        for key, value in context.items():
            event.setdefault(key, value)
        return event

    return processor


def reopen_logs() -> None:
    """Reopen the log file (SIGUSR1 after logrotate); no-op for stdout/stderr."""
    if _sink is not None:
        _sink.reopen()
