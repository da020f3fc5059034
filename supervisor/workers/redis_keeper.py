"""The embedded Redis, supervised like a worker: restarted with backoff, its state
reported, its log lines relayed.

``EmbeddedRedisKeeper.tick`` runs once per main-loop iteration
(``supervisor.services.embedded_redis``) and never blocks: a server that exited is
logged (``embedded_redis.exited``, an error: requests get 503 from ``/readyz`` and
Redis errors until it is back) and started again on the *same* port after
``supervisor.workers.backoff.restart_delay`` (0.5 s, 1 s, 2 s, ... up to
``supervisor.restart_backoff_max_seconds``; reset once it has run that long), so the
workers' connections find it again by themselves. Its data is not kept: a restarted
server starts empty. Its own log lines (warnings and above) are relayed as
``embedded_redis.log`` events written under ``process="embedded_redis"`` and its pid.
"""

from __future__ import annotations

import enum
import signal
import time
from collections.abc import Callable

import structlog

from supervisor.embedded_redis import EmbeddedRedis, parse_log_line
from supervisor.workers.backoff import restart_delay

log = structlog.get_logger("redis_gateway.supervisor")

#: A restarted server that does not answer PING within this is killed (and retried).
START_TIMEOUT_SECONDS = 10.0
DATA_KEPT = "no: in memory only, lost when it stops or restarts"


class RedisState(enum.StrEnum):
    STARTING = "starting"  # spawned, not answering PING yet
    RUNNING = "running"
    RESTARTING = "restarting"  # exited; waiting for the backoff before the next start
    STOPPED = "stopped"


def describe_server_exit(code: int) -> str:
    """'code 1' / 'signal SIGKILL' (a server's exit code, not a worker's)."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class EmbeddedRedisKeeper:
    """Starts, watches and restarts one ``EmbeddedRedis`` (all calls on the main loop)."""

    def __init__(
        self, server: EmbeddedRedis | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.server = server or EmbeddedRedis()
        self.state = RedisState.STOPPED
        self.restarts = 0
        #: Exits since it last ran for the backoff cap's duration.
        self.consecutive_exits = 0
        self.last_exit: str | None = None
        self._clock = clock
        self._since = clock()
        self._next_start_at = 0.0

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        """The first start, blocking until it answers (raises ``EmbeddedRedisError``)."""
        self.server.start()
        self._enter(RedisState.RUNNING)
        self._relay()
        log.info("embedded_redis.started", url=self.url, redis_pid=self.server.pid, data_kept=False)

    def tick(self, backoff_cap: float) -> None:
        """Notice an exit, restart after the backoff, see a restarted one answer."""
        self._relay()
        now = self._clock()
        if self.state in (RedisState.RUNNING, RedisState.STARTING):
            code = self.server.exit_code()
            if code is not None:
                self._exited(f"exited with {describe_server_exit(code)}", backoff_cap, now)
            elif self.state is RedisState.RUNNING:
                if self.consecutive_exits and now - self._since >= backoff_cap:
                    self.consecutive_exits = 0
            elif self.server.ping():
                self._enter(RedisState.RUNNING)
                log.info(
                    "embedded_redis.restarted",
                    url=self.url,
                    redis_pid=self.server.pid,
                    restarts=self.restarts,
                )
            elif now - self._since > START_TIMEOUT_SECONDS:
                self.server.kill()
                self._exited(f"did not answer within {START_TIMEOUT_SECONDS:g}s", backoff_cap, now)
        elif self.state is RedisState.RESTARTING and now >= self._next_start_at:
            try:
                self.server.spawn()
            except OSError as exc:  # fork/exec failed: try again after the backoff
                self._exited(f"could not be started: {exc}", backoff_cap, now)
                return
            self.restarts += 1
            self._enter(RedisState.STARTING)

    def _exited(self, why: str, backoff_cap: float, now: float) -> None:
        self._relay(final=True)
        self.consecutive_exits += 1
        delay = restart_delay(self.consecutive_exits, backoff_cap)
        self.last_exit = why
        self._enter(RedisState.RESTARTING)
        self._next_start_at = now + delay
        log.error(
            "embedded_redis.exited",
            redis_pid=self.server.pid,
            reason=why,
            restart_in=round(delay, 2),
            consecutive_exits=self.consecutive_exits,
            effect="Redis unavailable to the workers until it is back; its data is lost",
        )

    def _enter(self, state: RedisState) -> None:
        self.state = state
        self._since = self._clock()

    def _relay(self, final: bool = False) -> None:
        lines = self.server.read_log_lines(final=final)
        if not lines:
            return
        relay = log.bind(process="embedded_redis", pid=self.server.pid)
        for line in lines:
            level, message = parse_log_line(line)
            getattr(relay, level)("embedded_redis.log", message=message)

    def describe(self) -> dict[str, object]:
        """JSON-able view for `redis-gateway status`."""
        return {
            "state": str(self.state),
            "pid": self.server.pid if self.state is not RedisState.RESTARTING else None,
            "url": self.url,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "state_seconds": round(self._clock() - self._since, 1),
            "data_kept": DATA_KEPT,
        }

    def close(self) -> None:
        """Stop it for good (the supervisor's last teardown step)."""
        if self.state is RedisState.STOPPED:
            return
        self._relay(final=True)
        self.server.stop()
        self._enter(RedisState.STOPPED)
        log.info("embedded_redis.stopped")
