"""Slowloris: idle and trickling connections held open against a gateway.

Used by `tests/integration/test_slow_clients.py` and the fault suite (`faults.py`)::

    attack = Attack(port)
    attack.open(1500)           # half idle, half trickling a partial head
    attack.open_slow_bodies(500)  # whole heads, then a body trickling in
    ...                         # honest requests meanwhile
    attack.reap()               # how many the server has not closed yet
    attack.closed_after         # seconds from open to the server's close, per socket
    attack.stop()
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

#: A whole request head announcing a body that then arrives a byte at a time.
SLOW_BODY_HEAD = b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n["SET","k","'


class Attack:
    """Idle and trickling connections: ``open`` makes half of them send nothing and
    half a partial request head, ``open_slow_bodies`` whole heads and the start of a
    body; the trickling ones then send one byte every 0.2 s, for as long as the server
    keeps them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: dict[socket.socket, float] = {}  # -> when it was opened
        self.closed_after: list[float] = []  # seconds from open to the server's close
        self._trickling: set[socket.socket] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._dribbler = threading.Thread(target=self._dribble, daemon=True)

    def open(self, count: int) -> None:
        for i in range(count):
            self._open(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " if i % 2 else None)

    def open_slow_bodies(self, count: int) -> None:
        for _ in range(count):
            self._open(SLOW_BODY_HEAD)

    def _open(self, start: bytes | None) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if start is not None:
            sock.sendall(start)
        sock.setblocking(False)
        with self._lock:
            self.sockets[sock] = time.monotonic()
            if start is not None:
                self._trickling.add(sock)
        if not self._dribbler.is_alive():
            self._dribbler.start()

    def _dribble(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                socks = list(self._trickling)
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def reap(self) -> int:
        """Notice the sockets the server closed (EOF or reset, after any 408/503);
        return how many are still open."""
        with self._lock:
            by_fd = {sock.fileno(): sock for sock in self.sockets}
        poller = select.poll()  # select() cannot watch descriptors above 1024
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(0):
            sock = by_fd[fd]
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                continue  # an answer came, the close not yet
            except OSError:
                pass
            with self._lock:
                opened = self.sockets.pop(sock)
                self._trickling.discard(sock)
            self.closed_after.append(time.monotonic() - opened)
            sock.close()
        return len(self.sockets)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for sock in self.sockets:
                sock.close()
