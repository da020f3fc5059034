"""EmbeddedRedisKeeper with a fake server and clock: backoff, restarts, reset, status."""

from __future__ import annotations

from supervisor.cli_run import format_status
from supervisor.embedded_redis import EmbeddedRedis
from supervisor.workers.redis_keeper import EmbeddedRedisKeeper, RedisState


class FakeServer(EmbeddedRedis):
    def __init__(self) -> None:
        self.port = 6399
        self.code: int | None = None
        self.answers = True
        self.spawned = 0

    @property
    def pid(self) -> int | None:
        return 100 + self.spawned

    def start(self, timeout: float = 10.0) -> None:
        self.spawned += 1

    def spawn(self) -> None:
        self.spawned += 1
        self.code = None

    def ping(self) -> bool:
        return self.answers

    def exit_code(self) -> int | None:
        return self.code

    def read_log_lines(self, final: bool = False) -> list[str]:
        return []

    def stop(self, timeout: float = 5.0) -> None:
        self.code = 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_exits_are_restarted_with_a_doubling_delay_reset_after_a_healthy_run() -> None:
    server, clock = FakeServer(), Clock()
    keeper = EmbeddedRedisKeeper(server, clock)
    keeper.start()
    delays: list[float] = []
    for _ in range(3):
        server.code = -9
        keeper.tick(backoff_cap=4)
        assert keeper.state is RedisState.RESTARTING
        started_at = clock.now
        while keeper.state is RedisState.RESTARTING:
            clock.now += 0.25
            keeper.tick(backoff_cap=4)
        delays.append(clock.now - started_at)
        keeper.tick(backoff_cap=4)  # answers PING
        assert keeper.state is RedisState.RUNNING
    assert delays == [0.5, 1.0, 2.0]
    assert keeper.restarts == 3
    clock.now += 4  # ran for the cap's duration: the next exit starts over
    keeper.tick(backoff_cap=4)
    server.code = 1
    keeper.tick(backoff_cap=4)
    assert keeper.describe()["last_exit"] == "exited with code 1"
    clock.now += 0.5
    keeper.tick(backoff_cap=4)
    assert keeper.state is RedisState.STARTING


def test_a_restart_that_never_answers_is_killed_and_retried() -> None:
    server, clock = FakeServer(), Clock()
    keeper = EmbeddedRedisKeeper(server, clock)
    keeper.start()
    server.code, server.answers = -9, False
    keeper.tick(1)
    clock.now += 1
    keeper.tick(1)
    assert keeper.state is RedisState.STARTING
    server.kill = lambda: None  # type: ignore[method-assign]
    clock.now += 11
    keeper.tick(1)
    assert keeper.describe()["state"] == "restarting"
    assert keeper.last_exit == "did not answer within 10s"


def test_status_says_what_standby_workers_and_the_embedded_redis_are() -> None:
    keeper = EmbeddedRedisKeeper(FakeServer(), Clock())
    keeper.start()
    status: dict[str, object] = {
        "pid": 1,
        "uptime_seconds": 1.0,
        "listen": ["127.0.0.1:8080"],
        "version": 1,
        "hash": "abc",
        "profile": "dev",
        "generation": 1,
        "desired_workers": 2,
        "standby_workers": 2,
        "workers": [],
        "embedded_redis": keeper.describe(),
    }
    text = format_status(status)
    assert "standby: 2 spare worker(s), started and idle, serving nothing" in text
    assert "embedded redis: running (pid 101, redis://127.0.0.1:6399), 0 restart(s)" in text
    assert "data not kept" in text


def test_metrics_show_the_embedded_redis_only_once_there_is_one() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from supervisor.metrics import SupervisorMetrics

    registry = CollectorRegistry()
    metrics = SupervisorMetrics(registry, process_metrics=False)
    assert b"embedded_redis" not in generate_latest(registry)
    metrics.set_embedded_redis("running", 0)
    metrics.set_embedded_redis("restarting", 2)
    metrics.set_embedded_redis("restarting", 2)
    text = generate_latest(registry).decode()
    assert "redis_gateway_embedded_redis_up 0.0" in text
    assert "redis_gateway_embedded_redis_restarts_total 2.0" in text


def test_every_status_option_has_help() -> None:
    from click.testing import CliRunner

    from supervisor.cli_run import status

    result = CliRunner().invoke(status, ["--help"])
    assert result.exit_code == 0
    assert "Seconds to wait for the supervisor's answer" in result.output
    assert all(p.help for p in status.params if not p.hidden and p.name != "help")  # type: ignore[attr-defined]
