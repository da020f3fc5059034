"""A crash loop and what ends it, driven with the fake workers and clock of
``test_arbiter`` (issue 8, items 7 and 11): the backoff while nothing serves, the
single probe, the reason clients are told, and exits that are no crash."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import structlog.testing

from supervisor.workers.backoff import UNSERVED_MAX_DELAY_SECONDS
from supervisor.workers.handle import WorkerState
from tests.unit.test_arbiter import Env


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.sock.close()


def _crash_every_live_worker(env: Env) -> None:
    for w in env.live(1):
        w.fail("Redis at 127.0.0.1:1 unreachable: Connection refused")
    env.arbiter.step()


def _until_spawned(env: Env, step: float = 0.05, limit: float = 60.0) -> float:
    """Advance the clock until a worker of generation 1 is starting; the time it took."""
    start = env.clock.now
    while not any(w.state is WorkerState.STARTING for w in env.live(1)):
        assert env.clock.now - start < limit, "no replacement started"
        env.clock.now += step
        for w in env.live(1):
            w.last_heartbeat = env.clock.now  # the ready ones stay healthy meanwhile
        env.arbiter.step()
    return env.clock.now - start


def test_while_nothing_serves_one_probe_per_round_and_never_a_long_wait(env: Env) -> None:
    env.core.generations.scale.desired = 4
    env.arbiter.start()
    for w in env.live():
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.booted and len(env.live(1)) == 4
    _crash_every_live_worker(env)
    waits = []
    for _ in range(8):  # rounds 1..8: the plain backoff would reach the 8 s cap
        waits.append(_until_spawned(env))
        starting = [w for w in env.live(1) if w.state is WorkerState.STARTING]
        assert len(starting) == 1, "more than one probe while nothing serves"
        _crash_every_live_worker(env)
    assert env.core.pool.backoff.rounds == 9  # every round counted
    assert max(waits) <= UNSERVED_MAX_DELAY_SECONDS + 0.05
    # The cause is gone: the next probe is ready, and every other slot starts at once.
    _until_spawned(env)
    [probe] = env.live(1)
    probe.become_ready()
    env.arbiter.step()
    assert len(env.live(1)) == 4
    assert env.arbiter.unserved_reason() is None


def test_the_reason_clients_are_told_is_the_last_crash(env: Env) -> None:
    env.boot()
    assert env.arbiter.unserved_reason() is None
    _crash_every_live_worker(env)
    assert env.arbiter.unserved_reason() == "Redis at 127.0.0.1:1 unreachable: Connection refused"
    assert env.arbiter.status()["unserved"] == env.arbiter.unserved_reason()
    _until_spawned(env)
    env.live(1)[0].become_ready()
    env.arbiter.step()
    assert env.arbiter.unserved_reason() is None


def test_a_worker_still_serving_keeps_the_plain_exponential_backoff(env: Env) -> None:
    env.boot()
    delays = []
    for _ in range(4):
        env.live(1)[0].exit(1)
        env.arbiter.step()
        delays.append(_until_spawned(env))
        for w in env.live(1):
            w.become_ready()
    assert delays[-1] >= 4.0  # 0.5, 1, 2, 4: the other worker serves meanwhile


def test_a_draining_worker_killed_at_its_deadline_is_no_crash(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGTTOU)  # one worker fewer: the extra one drains
    env.arbiter.dispatch()
    env.arbiter.step()
    [draining] = [w for w in env.live(1) if w.state is WorkerState.DRAINING]
    env.clock.now += 5.1  # past graceful_shutdown_timeout_seconds: SIGKILL
    for w in env.live(1):
        w.last_heartbeat = env.clock.now
    with structlog.testing.capture_logs() as logs:
        env.arbiter.step()  # the kill
        env.arbiter.step()  # the reap
    assert signal.SIGKILL in draining.signals and not draining.alive
    events = [e["event"] for e in logs]
    assert "worker.killed" in events
    assert "worker.crashed" not in events
    assert env.core.pool.backoff.rounds == 0


def test_a_worker_killed_after_missed_heartbeats_is_no_crash(env: Env) -> None:
    env.boot()
    stuck, healthy = env.live(1)
    env.clock.now += 3.5
    healthy.last_heartbeat = env.clock.now
    env.arbiter.step()  # SIGTERM to the silent one, replacement started
    for w in env.live(1):
        if w is not stuck:
            w.become_ready()
    env.clock.now += 3.1
    for w in env.live(1):
        w.last_heartbeat = env.clock.now if w is not stuck else w.last_heartbeat
    with structlog.testing.capture_logs() as logs:
        env.arbiter.step()
        env.arbiter.step()
    assert not stuck.alive
    assert "worker.crashed" not in [e["event"] for e in logs]
    assert env.core.pool.backoff.rounds == 0
