"""Listening sockets: bound once by the supervisor, or received from systemd.

Every worker of every generation inherits the *same* socket (one kernel accept
queue), so a worker closing its copy on drain loses nothing that was queued. That
is why there is no SO_REUSEPORT here: each reuseport socket has its own queue, and
closing it resets the connections waiting in it (see PITFALLS.md).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from gateway_worker.errors import GatewayError

BACKLOG = 2048


class BindError(GatewayError):
    """The listen address could not be bound."""


@dataclass
class Listener:
    """One listening socket and the address it was asked for."""

    sock: socket.socket
    host: str
    port: int
    from_systemd: bool = False

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        # Sockets handed over by systemd are systemd's to close.
        if not self.from_systemd:
            self.sock.close()


def bind(host: str, port: int, backlog: int = BACKLOG) -> Listener:
    """Bind and listen on ``host:port`` (IPv4 or IPv6, SO_REUSEADDR, inheritable)."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise BindError(f"server.host {host!r}: cannot resolve: {exc}") from exc
    last: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            # REUSEADDR lets a restarted supervisor rebind past TIME_WAIT; it does not
            # allow two live listeners (that would be SO_REUSEPORT).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.set_inheritable(True)
        return Listener(sock, host, port)
    raise BindError(f"cannot listen on {host}:{port}: {last}")


def from_systemd(socks: list[socket.socket]) -> list[Listener]:
    """Wrap sockets passed by systemd (LISTEN_FDS), keeping their own addresses."""
    result = []
    for sock in socks:
        sock.set_inheritable(True)
        name = sock.getsockname()
        host, port = (str(name[0]), int(name[1])) if isinstance(name, tuple) else (str(name), 0)
        result.append(Listener(sock, host, port, from_systemd=True))
    return result


def same_address(listener: Listener, host: str, port: int) -> bool:
    """Whether a listener already serves the configured address."""
    if listener.from_systemd:
        # systemd owns the address; the config's host/port do not rebind it.
        return True
    return listener.host == host and listener.port == port
