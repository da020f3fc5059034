"""Finding the master: ``find_master`` asks each Sentinel (``redis.nodes``, in order)
``SENTINEL GET-MASTER-ADDR-BY-NAME <redis.sentinel_master>``, then asks the node it
names for its ``ROLE``: a Sentinel can be stale (it may not have seen a failover yet,
or name a master that is down), so the answer counts only when that node says
``master``. The first verified answer wins; when none is, ``RedisUnavailable`` lists
what each Sentinel said.
"""

from __future__ import annotations

import asyncio

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import ConnectOptions, open_connection
from gateway_worker.redis.values import ReplyError, RespValue


async def _ask(options: ConnectOptions, command: list[bytes], timeout: float) -> RespValue:
    conn = await open_connection(options)
    try:
        async with asyncio.timeout(timeout):
            return await conn.request(command)
    except TimeoutError:
        raise RedisUnavailable(f"{options.where} did not reply within {timeout:g}s") from None
    finally:
        conn.close()


async def role_problem(options: ConnectOptions, timeout: float) -> str | None:
    """None when the node at ``options`` says it is a master, else what it is."""
    try:
        reply = await _ask(options, [b"ROLE"], timeout)
    except RedisUnavailable as exc:
        return f"it cannot be reached ({exc})"
    if isinstance(reply, list) and reply and reply[0] == b"master":
        return None
    role = reply[0] if isinstance(reply, list) and reply else reply
    shown = role.decode("utf-8", "replace") if isinstance(role, bytes) else str(role)
    return f"it answers ROLE with {shown!r}, not 'master'"


async def find_master(
    sentinels: list[ConnectOptions], name: str, data: ConnectOptions, timeout: float
) -> ConnectOptions:
    """``data`` pointed at the verified master (see the module docstring)."""
    problems: list[str] = []
    command = [b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name.encode()]
    for sentinel in sentinels:
        try:
            reply = await _ask(sentinel, command, timeout)
        except RedisUnavailable as exc:
            problems.append(f"sentinel {sentinel.where}: {exc}")
            continue
        if isinstance(reply, ReplyError) or not isinstance(reply, list) or len(reply) != 2:
            said = reply if isinstance(reply, ReplyError) else "no master by that name"
            problems.append(f"sentinel {sentinel.where}: {said}")
            continue
        host, port = reply
        if not isinstance(host, bytes) or not isinstance(port, bytes) or not port.isdigit():
            problems.append(f"sentinel {sentinel.where}: unexpected reply {reply!r}")
            continue
        candidate = data.at(host.decode(), int(port))
        problem = await role_problem(candidate, timeout)
        if problem is None:
            return candidate
        problems.append(f"sentinel {sentinel.where} names {candidate.where}, but {problem}")
    raise RedisUnavailable(
        f"no Sentinel named a master {name!r} that answers ROLE as master: " + "; ".join(problems)
    )
