"""The worker's ends of its pipes to the supervisor (the protocol is ``contract.py``).

* ``StatusChannel``: the status pipe (worker → supervisor): ``ready``, ``draining``,
  ``fatal``, and the heartbeats ``Heartbeat`` sends from the event loop.
* ``read_config_line``: the one config line on the config pipe (supervisor → worker);
  ``ConfigPipeWatch`` then waits for that pipe's EOF (the supervisor is gone).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable

from gateway_worker.contract import ExitCode, StatusMessage, encode_message


class StatusChannel:
    """The worker's end of the status pipe (worker → supervisor)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        if fd is not None:
            # Never block the event loop on a supervisor that stopped reading
            # (e.g. SIGSTOPped): a full pipe drops heartbeats instead.
            os.set_blocking(fd, False)

    def send(self, message: StatusMessage) -> None:
        if self.fd is None:
            return
        message.setdefault("pid", os.getpid())
        try:
            os.write(self.fd, encode_message(message))
        except BlockingIOError:
            return  # pipe full: the supervisor is not reading; dropping is harmless
        except OSError:
            # The supervisor is gone; the config-pipe EOF will stop us.
            self.fd = None

    def fatal(self, error: str, code: ExitCode) -> int:
        """Report a fatal boot error and return the exit code to use."""
        self.send({"type": "fatal", "error": error, "code": int(code)})
        print(f"redis-gateway worker: {error}", file=sys.stderr, flush=True)
        return int(code)


def read_config_line(fd: int) -> bytes | None:
    """Read the one config line from the supervisor; None on EOF before it."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


class Heartbeat:
    """Heartbeats on the status pipe every ``interval`` seconds, sent from the event
    loop on purpose: a blocked loop misses them, and the supervisor notices."""

    def __init__(self, status: StatusChannel, interval: float) -> None:
        self._status = status
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._status.fd is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _beat(self) -> None:
        while True:
            self._status.send({"type": "heartbeat", "t": time.monotonic()})
            await asyncio.sleep(self._interval)


class ConfigPipeWatch:
    """Waits for EOF on the config pipe: the supervisor is gone (even SIGKILLed), so
    the worker drains (``on_eof``) and exits ``ORPHANED``."""

    def __init__(self, fd: int, on_eof: Callable[[], None]) -> None:
        self._fd = fd
        self._on_eof = on_eof
        self.orphaned = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
            self.orphaned = True
            self._on_eof()
