"""``SwitchWatch``: a subscription to ``+switch-master`` on one Sentinel at a time.

A Sentinel publishes ``<name> <old-ip> <old-port> <new-ip> <new-port>`` on the
``+switch-master`` channel when it has promoted a replica; for our master's name the
client is told (``on_switch``), and verifies the new master before moving to it. The
subscription moves to the next Sentinel when its connection is lost, and a Sentinel
silent for two ``redis.health_check_interval_seconds`` in a row (a PING in between got
no answer: a half-open connection) is left too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection

log = structlog.get_logger("gateway_worker.redis")

CHANNEL = b"+switch-master"
OnSwitch = Callable[[str, int], Awaitable[None]]


class SwitchWatch:
    """Follows ``+switch-master`` for ``name`` (see the module docstring)."""

    def __init__(
        self,
        sentinels: list[ConnectOptions],
        name: str,
        on_switch: OnSwitch,
        quiet_seconds: float,
        retry_delay: float,
    ) -> None:
        self._sentinels = sentinels
        self._name = name.encode()
        self._on_switch = on_switch
        self._quiet = quiet_seconds
        self._retry_delay = max(retry_delay, 0.05)

    async def run(self) -> None:
        """Forever: subscribe on each Sentinel in turn."""
        turn = 0
        while True:
            sentinel = self._sentinels[turn % len(self._sentinels)]
            turn += 1
            with contextlib.suppress(RedisUnavailable):
                await self._follow(sentinel)
            await asyncio.sleep(self._retry_delay)

    async def _follow(self, sentinel: ConnectOptions) -> None:
        conn = await open_connection(sentinel, dedicated=True)
        try:
            await conn.execute([b"SUBSCRIBE", CHANNEL], self._quiet)
            log.debug("redis.sentinel_subscribed", sentinel=sentinel.where)
            while True:
                await self._next(conn)
        finally:
            conn.close()

    async def _next(self, conn: RespConnection) -> None:
        try:
            message = await conn.read(self._quiet)
        except RedisUnavailable:
            if not conn.is_open:
                raise
            await conn.send([b"PING"])  # answered in subscribed mode too
            message = await conn.read(self._quiet)
        if not (isinstance(message, list) and len(message) == 3 and message[0] == b"message"):
            return
        payload = message[2]
        if not isinstance(payload, bytes):
            return
        fields = payload.split()
        if len(fields) == 5 and fields[0] == self._name and fields[4].isdigit():
            log.info(
                "redis.sentinel_switch_announced", announced=payload.decode("utf-8", "replace")
            )
            await self._on_switch(fields[3].decode(), int(fields[4]))
