"""Batches on one dedicated connection, shared by every topology.

* ``run_exclusive``: a pipeline holding a blocking command or a script, run in order on
  a connection of its own (a blocking command would stall the shared connection, a
  script needs its guard).
* ``transaction_on``: ``MULTI`` ... ``EXEC``; with a script inside, ``EXEC`` goes alone
  and its reply is awaited under the script guard (Redis sends no reply of that batch
  while the script runs). A discarded transaction is one ``ReplyError`` saying why:
  ``EXECABORT`` alone does not, the queueing error does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway_worker.redis.commands import is_blocking
from gateway_worker.redis.executor import DedicatedConnection
from gateway_worker.redis.scripts import SCRIPTS, ScriptGuard
from gateway_worker.redis.values import ReplyError, RespValue


def retrieve(fut: asyncio.Future[RespValue]) -> None:
    """Done callback: mark a future's exception as retrieved (nobody awaits it)."""
    if not fut.cancelled():
        fut.exception()


async def run_exclusive(
    conn: DedicatedConnection,
    commands: Sequence[Sequence[bytes]],
    scripts: ScriptGuard,
    timeout: float,
) -> list[RespValue]:
    """Run ``commands`` one after the other on ``conn`` (see the module docstring)."""
    blocking = any(is_blocking(args[0].upper(), args) for args in commands if args)
    replies: list[RespValue] = []
    for args in commands:
        name = args[0].upper()
        await conn.send(args)
        if name in SCRIPTS:
            replies.append(await scripts.reply(conn, name))
        else:
            replies.append(await conn.read(None if blocking else timeout))
    return replies


async def transaction_on(
    conn: DedicatedConnection,
    commands: Sequence[Sequence[bytes]],
    scripts: ScriptGuard,
    timeout: float,
    asking: bool = False,
) -> list[RespValue] | ReplyError:
    """``MULTI`` ``commands`` ``EXEC`` on ``conn`` (``asking``: ``ASKING`` first, for a
    cluster slot being imported by that node)."""
    script: bytes | None = None
    for args in commands:
        name = args[0].upper() if args else b""
        script = name if name in SCRIPTS else script
    preamble = [[b"ASKING"], [b"MULTI"]] if asking else [[b"MULTI"]]
    for args in preamble:
        await conn.send(args)
    for args in commands:
        await conn.send(args)
    if script is None:
        await conn.send([b"EXEC"])
    first_error: ReplyError | None = None
    for _ in range(len(commands) + len(preamble)):
        reply = await conn.read(timeout)
        if isinstance(reply, ReplyError) and first_error is None:
            first_error = reply
    if script is None:
        result = await conn.read(timeout)
    else:
        await conn.send([b"EXEC"])
        result = await scripts.reply(conn, script)
    if isinstance(result, list):
        return result
    if isinstance(result, ReplyError):
        return ReplyError(f"{result} ({first_error})") if first_error else result
    return ReplyError("EXECABORT Transaction discarded")
