"""The script guard: a Lua script or function that runs past its deadline is stopped.

One script that never yields stops Redis for everyone (every other client gets
``BUSY``), and nothing sent through the gateway afterwards could end it. So a script
command (``SCRIPTS``) runs on a dedicated connection and ``ScriptGuard.reply`` waits for
its reply like this:

1. up to ``redis.command_timeout_seconds``;
2. past it, a fresh connection (database 0: ``SELECT`` is refused while Redis is busy,
   ``AUTH`` is not) sends ``SCRIPT KILL`` (``FUNCTION KILL`` for ``FCALL``/``FCALL_RO``;
   when Redis answers that the other kind is running, the other kill follows).
   Concurrent waiters share one kill. Redis reads it only once the script has run for
   its ``busy-reply-threshold`` (``lua-time-limit``, 5 s by default), so the kill waits
   up to ``KILL_WAIT_SECONDS`` for the answer;
3. ``OK``: the script's own reply (the "killed" error) arrives and the caller gets
   ``ScriptTimeout`` (504) saying it was stopped and had written nothing; when no reply
   comes (the script killed was another one, ours runs now), back to 1, at most
   ``MAX_KILLS`` kills. ``NOTBUSY``: the script ended meanwhile, back to 1 (its reply
   is the answer). ``UNKILLABLE`` (the script already wrote: Redis cannot undo it) is
   logged as an error, ``stuck`` is set (``/readyz`` names it until a PING is answered
   again) and the caller gets ``ScriptTimeout`` naming it. Anything else (no answer,
   ``NOPERM``...) is logged and reported the same way.

A caller cancelled while its script runs (its request's own deadline) still sees these
steps through before it lets go of the connection: no script outlives its deadline
because the request that sent it gave up first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from gateway_worker.errors import RedisUnavailable, ScriptTimeout
from gateway_worker.redis.connection import ConnectOptions, open_connection
from gateway_worker.redis.executor import DedicatedConnection
from gateway_worker.redis.values import ReplyError, RespValue

log = structlog.get_logger("gateway_worker.redis")

#: The commands that run a script or a function (the guard applies to them).
SCRIPTS: frozenset[bytes] = frozenset(
    {b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"}
)
_FUNCTIONS = frozenset({b"FCALL", b"FCALL_RO"})
_SCRIPT_KILL = (b"SCRIPT", b"KILL")
_FUNCTION_KILL = (b"FUNCTION", b"KILL")

#: How long a kill waits for Redis's answer (Redis reads it only after its
#: busy-reply-threshold, 5 s by default).
KILL_WAIT_SECONDS = 10.0
#: Kills one caller may send before it reports failure (see step 3).
MAX_KILLS = 3


def has_script(commands: Sequence[Sequence[bytes]]) -> bool:
    """True when one of ``commands`` runs a script."""
    return any(args and args[0].upper() in SCRIPTS for args in commands)


@dataclass(frozen=True)
class StuckScript:
    """A script Redis refused to kill: Redis stays busy until it ends."""

    command: str
    since: float  # time.time()

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        return (
            f"a script ({self.command}) sent through this gateway has kept Redis busy since "
            f"{when} and cannot be killed (UNKILLABLE: it already wrote); Redis answers "
            f"BUSY until it ends, or until an operator runs SHUTDOWN NOSAVE (which loses "
            f"writes not yet saved)"
        )


@dataclass(frozen=True)
class _Kill:
    command: tuple[bytes, ...]
    reply: RespValue | None  # Redis's answer; None when it could not be had
    problem: str = ""  # why there is no answer

    @property
    def name(self) -> str:
        return b" ".join(self.command).decode()

    def answered(self, code: str) -> bool:
        return isinstance(self.reply, ReplyError) and self.reply.startswith(code)

    @property
    def shown(self) -> str:
        reply = self.reply
        return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)

    @property
    def ok(self) -> bool:
        return self.reply == b"OK"


class KillConnection(Protocol):
    """What a kill needs of a connection (``RespConnection``)."""

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        """Send one command and read its reply."""

    def close(self) -> None:
        """Close it."""


#: Opens the connection a kill is sent on (``open_connection`` outside tests).
Connect = Callable[[ConnectOptions], Awaitable[KillConnection]]


async def _dedicated_connection(options: ConnectOptions) -> KillConnection:
    return await open_connection(options, dedicated=True)


class ScriptGuard:
    """Waits for script replies and kills scripts past their deadline (module docstring)."""

    def __init__(
        self, options: ConnectOptions, timeout: float, connect: Connect = _dedicated_connection
    ) -> None:
        self._kill_options = self._for_kills(options)
        self._connect = connect
        self._timeout = timeout
        self._kills: dict[tuple[bytes, ...], asyncio.Task[_Kill]] = {}
        self.stuck: StuckScript | None = None

    @staticmethod
    def _for_kills(options: ConnectOptions) -> ConnectOptions:
        return replace(
            options, db=0, connect_timeout=max(options.connect_timeout, KILL_WAIT_SECONDS)
        )

    def retarget(self, options: ConnectOptions) -> None:
        """Send later kills to ``options`` (the sentinel mode found another master)."""
        self._kill_options = self._for_kills(options)

    async def reply(self, conn: DedicatedConnection, name: bytes) -> RespValue:
        """The reply to the script ``name`` just sent on ``conn`` (see the module docstring);
        raises ``ScriptTimeout`` when it was stopped or could not be."""
        task = asyncio.ensure_future(self._reply(conn, name))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await asyncio.wait([task])  # see the script through, then give up
            if not task.cancelled():
                task.exception()  # retrieved: the caller is gone
            raise

    def ended(self, why: str) -> None:
        """A stuck script is over: Redis answered a PING, or the connection to it is gone."""
        if self.stuck is not None:
            log.warning("redis.script_ended", command=self.stuck.command, why=why)
            self.stuck = None

    async def _reply(self, conn: DedicatedConnection, name: bytes) -> RespValue:
        command = _FUNCTION_KILL if name in _FUNCTIONS else _SCRIPT_KILL
        kill: _Kill | None = None
        for kills in range(MAX_KILLS + 1):
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await conn.read(None)
            except TimeoutError:
                if kills == MAX_KILLS:
                    break
                kill = await self._shared_kill(command)
                if kill.ok or kill.answered("NOTBUSY"):
                    continue  # the reply should come now
                break
            if kill is not None and kill.ok and isinstance(reply, ReplyError):
                raise self._stopped(name, kill, reply)
            return reply
        assert kill is not None
        raise self._failed(name, kill)

    async def _shared_kill(self, command: tuple[bytes, ...]) -> _Kill:
        task = self._kills.get(command)
        if task is None:
            task = asyncio.create_task(self._send_kill(command), name="redis-script-kill")
            self._kills[command] = task
            task.add_done_callback(lambda _: self._kills.pop(command, None))
        return await asyncio.shield(task)

    async def _send_kill(self, command: tuple[bytes, ...]) -> _Kill:
        try:
            conn = await self._connect(self._kill_options)
        except RedisUnavailable as exc:
            return _Kill(command, None, str(exc))
        try:
            async with asyncio.timeout(KILL_WAIT_SECONDS):
                reply = await conn.execute(command)
                other = _FUNCTION_KILL if command == _SCRIPT_KILL else _SCRIPT_KILL
                # "BUSY ... You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
                if isinstance(reply, ReplyError) and b" ".join(other).decode() in reply:
                    command, reply = other, await conn.execute(other)
        except TimeoutError:
            return _Kill(command, None, f"Redis did not answer within {KILL_WAIT_SECONDS:g}s")
        except RedisUnavailable as exc:
            return _Kill(command, None, str(exc))
        finally:
            conn.close()
        return _Kill(command, reply)

    def _late(self, name: bytes) -> str:
        command = name.decode("ascii", "replace").upper()
        return f"{command} ran past redis.command_timeout_seconds={self._timeout:g}"

    def _stopped(self, name: bytes, kill: _Kill, reply: ReplyError) -> ScriptTimeout:
        log.warning(
            "redis.script_killed", command=name.decode("ascii", "replace").upper(), kill=kill.name
        )
        return ScriptTimeout(
            f"{self._late(name)}: the gateway stopped it with {kill.name}; it had written "
            f"nothing (Redis: {reply})"
        )

    def _failed(self, name: bytes, kill: _Kill) -> ScriptTimeout:
        command = name.decode("ascii", "replace").upper()
        if kill.answered("UNKILLABLE"):
            self.stuck = StuckScript(command, time.time())
            log.error("redis.script_unkillable", command=command, kill=kill.name)
            return ScriptTimeout(
                f"{self._late(name)}; {kill.name} was refused: {self.stuck.describe()}"
            )
        if kill.ok or kill.answered("NOTBUSY"):
            return ScriptTimeout(
                f"{self._late(name)} and no reply came after {MAX_KILLS} x {kill.name} "
                f"(last answer: {kill.shown}): Redis is slow or blocked by something else"
            )
        problem = kill.problem or kill.shown
        log.error("redis.script_kill_failed", command=command, kill=kill.name, error=problem)
        return ScriptTimeout(
            f"{self._late(name)} and {kill.name} failed ({problem}); Redis may stay busy "
            f"until the script ends"
        )
