"""The script guard's decisions, driven with fake connections (the real valkey cases are
in tests/integration/test_script_guard.py): NOTBUSY, a kill that must be repeated, the
other kind of kill, an unreachable Redis, kills shared by concurrent scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway_worker.errors import RedisUnavailable, ScriptTimeout
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.scripts import MAX_KILLS, KillConnection, ScriptGuard
from gateway_worker.redis.values import ReplyError, RespValue, Status

OPTIONS = ConnectOptions(
    host="127.0.0.1",
    port=1,
    unix_path=None,
    ssl_context=None,
    username=None,
    password=None,
    db=4,
    connect_timeout=1.0,
)
KILLED = ReplyError("ERR Script killed by user with SCRIPT KILL.")


class ScriptConn:
    """The dedicated connection a script was sent on: its reply comes when told to."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[RespValue] = asyncio.Queue()

    async def send(self, args: Sequence[bytes]) -> None:
        raise AssertionError("the guard only reads")

    async def read(self, timeout: float | None = None) -> RespValue:
        return await self.replies.get()

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        raise AssertionError("the guard only reads")


class Redis:
    """Answers kills from a script; ``script`` gets the killed reply on an OK."""

    def __init__(self, *answers: RespValue, script: ScriptConn | None = None) -> None:
        self.answers = list(answers)
        self.script = script
        self.sent: list[tuple[bytes, ...]] = []
        self.connected_with: list[ConnectOptions] = []

    async def connect(self, options: ConnectOptions) -> KillConnection:
        self.connected_with.append(options)
        return self

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        self.sent.append(tuple(args))
        answer = self.answers.pop(0)
        if answer == b"OK" and self.script is not None:
            self.script.replies.put_nowait(KILLED)
        return answer

    def close(self) -> None:
        pass


def guard(redis: Redis) -> ScriptGuard:
    return ScriptGuard(OPTIONS, timeout=0.05, connect=redis.connect)


def test_a_killed_script_is_a_504_saying_so_and_the_kill_runs_in_database_0() -> None:
    async def main() -> None:
        conn = ScriptConn()
        redis = Redis(Status(b"OK"), script=conn)
        with pytest.raises(ScriptTimeout, match="stopped it with SCRIPT KILL; it had written"):
            await guard(redis).reply(conn, b"EVAL")
        assert redis.sent == [(b"SCRIPT", b"KILL")]
        assert redis.connected_with[0].db == 0  # SELECT is refused while Redis is busy

    asyncio.run(main())


def test_notbusy_means_the_script_ended_meanwhile_and_its_reply_is_the_answer() -> None:
    async def main() -> None:
        conn = ScriptConn()
        redis = Redis(ReplyError("NOTBUSY No scripts in execution right now."))
        task = asyncio.create_task(guard(redis).reply(conn, b"EVAL"))
        while not redis.sent:
            await asyncio.sleep(0.01)
        conn.replies.put_nowait(b"result")
        assert await task == b"result"

    asyncio.run(main())


def test_a_function_is_killed_with_function_kill_and_the_busy_hint_is_followed() -> None:
    async def main() -> None:
        conn = ScriptConn()
        redis = Redis(Status(b"OK"), script=conn)
        with pytest.raises(ScriptTimeout, match="FUNCTION KILL"):
            await guard(redis).reply(conn, b"FCALL")
        assert redis.sent == [(b"FUNCTION", b"KILL")]
        # An EVAL stuck behind a *function*: Redis says which kill it wants.
        conn = ScriptConn()
        busy = ReplyError("BUSY Redis is busy running a script. You can only call FUNCTION KILL")
        redis = Redis(busy, Status(b"OK"), script=conn)
        with pytest.raises(ScriptTimeout, match="stopped it with FUNCTION KILL"):
            await guard(redis).reply(conn, b"EVAL")
        assert redis.sent == [(b"SCRIPT", b"KILL"), (b"FUNCTION", b"KILL")]

    asyncio.run(main())


def test_kills_are_repeated_when_the_killed_script_was_another_one() -> None:
    async def main() -> None:
        conn = ScriptConn()  # no reply ever comes: ours never ends
        redis = Redis(*[Status(b"OK")] * MAX_KILLS)
        with pytest.raises(ScriptTimeout, match=f"no reply came after {MAX_KILLS} x SCRIPT KILL"):
            await guard(redis).reply(conn, b"EVAL")
        assert len(redis.sent) == MAX_KILLS

    asyncio.run(main())


def test_unkillable_sets_stuck_until_redis_answers_again() -> None:
    async def main() -> None:
        unkillable = ReplyError("UNKILLABLE Sorry the script already executed write commands")
        g = guard(Redis(unkillable))
        with pytest.raises(ScriptTimeout) as exc:
            await g.reply(ScriptConn(), b"EVAL")
        assert "SCRIPT KILL was refused" in str(exc.value)
        assert g.stuck is not None and "UNKILLABLE" in g.stuck.describe()
        g.ended("PING answered")
        assert g.stuck is None

    asyncio.run(main())


def test_an_unreachable_redis_or_a_refused_kill_is_reported() -> None:
    async def main() -> None:
        async def refused(options: ConnectOptions) -> KillConnection:
            raise RedisUnavailable("cannot connect to Redis at redis://127.0.0.1:1: refused")

        g = ScriptGuard(OPTIONS, timeout=0.05, connect=refused)
        with pytest.raises(ScriptTimeout, match=r"SCRIPT KILL failed \(cannot connect"):
            await g.reply(ScriptConn(), b"EVAL")
        noperm = ReplyError("NOPERM this user has no permissions to run the 'script' command")
        with pytest.raises(ScriptTimeout, match=r"failed \(NOPERM"):
            await guard(Redis(noperm)).reply(ScriptConn(), b"EVAL_RO")

    asyncio.run(main())


def test_concurrent_scripts_share_one_kill() -> None:
    async def main() -> None:
        a, b = ScriptConn(), ScriptConn()
        redis = Redis(Status(b"OK"))
        g = guard(redis)

        async def one(conn: ScriptConn) -> str:
            with pytest.raises(ScriptTimeout) as exc:
                await g.reply(conn, b"EVAL")
            return str(exc.value)

        original = redis.execute

        async def both_killed(args: Sequence[bytes], timeout: float | None = None) -> RespValue:
            answer = await original(args, timeout)
            a.replies.put_nowait(KILLED)
            b.replies.put_nowait(KILLED)
            return answer

        redis.execute = both_killed  # type: ignore[method-assign]
        results = await asyncio.gather(one(a), one(b))
        assert all("stopped it" in r for r in results)
        assert redis.sent == [(b"SCRIPT", b"KILL")]

    asyncio.run(main())


def test_a_cancelled_caller_sees_its_script_through() -> None:
    async def main() -> None:
        conn = ScriptConn()
        redis = Redis(Status(b"OK"), script=conn)
        task = asyncio.create_task(guard(redis).reply(conn, b"EVAL"))
        await asyncio.sleep(0.01)
        task.cancel()  # the request's deadline, before the script's
        with pytest.raises(asyncio.CancelledError):
            await task
        assert redis.sent == [(b"SCRIPT", b"KILL")]  # killed before the caller let go

    asyncio.run(main())
