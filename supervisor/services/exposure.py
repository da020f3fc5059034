"""A loud warning whenever the gateway serves without authentication beyond loopback.

With ``auth.enabled = false`` anyone who can reach the port runs Redis commands (the
``dev`` profile even allows raw ones), so `run` says so at start, and again after a
reload that makes it so: one WARNING log event (``security.unauthenticated``) and one
line on stderr, which reaches a terminal or the journal even when the logs go to a
file. Nothing is repeated while it stays so; a reload that turns auth on (or moves to
loopback) ends it, and a later one that turns it off again warns again.

The address is the configured ``server.host`` (a name counts as loopback only if every
address it resolves to is), or, for sockets passed by systemd, their own addresses
(a reload does not change those).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

import structlog

from gateway_worker.config import Config
from supervisor.config import LoadedConfig
from supervisor.sockets import Listener

log = structlog.get_logger("redis_gateway.supervisor")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is loopback only."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return bool(infos) and all(is_loopback(str(info[4][0])) for info in infos)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class ExposureWarning:
    """Hooks: ``committed`` (and ``check`` at start, from the builder)."""

    def __init__(self, listeners: Sequence[Listener], stderr: TextIO | None = None) -> None:
        self._systemd = [f"{lst.host}:{lst.port}" for lst in listeners if lst.from_systemd]
        self._hosts = [lst.host for lst in listeners if lst.from_systemd]
        self._stderr = stderr
        self._warned = False

    def check(self, config: Config) -> None:
        """Warn if ``config`` serves unauthenticated beyond loopback (once while so)."""
        if self._hosts:
            hosts, listen = self._hosts, self._systemd
        else:
            hosts, listen = [config.server.host], [f"{config.server.host}:{config.server.port}"]
        exposed = not config.auth.enabled and not all(is_loopback(h) for h in hosts)
        if exposed and not self._warned:
            log.warning(
                "security.unauthenticated",
                listen=listen,
                profile=config.profile,
                fix="set auth.enabled = true (with auth.api_keys or auth.jwt_secret), "
                "or server.host = 127.0.0.1",
            )
            print(
                f"redis-gateway: WARNING: authentication is off and the gateway listens on "
                f"{', '.join(listen)}, beyond loopback: anyone who can reach it can run "
                "Redis commands. Set auth.enabled = true, or server.host = 127.0.0.1.",
                file=self._stderr or sys.stderr,
                flush=True,
            )
        self._warned = exposed

    def committed(self, loaded: LoadedConfig, version: int) -> None:
        self.check(loaded.config)
