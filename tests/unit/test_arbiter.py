"""The arbiter and the reload transaction, driven step by step with fake workers.

No processes: ``FakeWorker`` stands in for ``WorkerProcess`` (a ``WorkerHandle``), the
clock is a counter the test advances, and the config loader returns whatever the test
put in ``Env.next_config``. The core is wired by ``supervisor.builder.assemble``, as in
production, with those fakes at its edges.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import signal
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog.testing

from gateway_worker.config import Config, dump_with_secrets
from supervisor.builder import assemble
from supervisor.config import ConfigError, ConfigInputs, LoadedConfig
from supervisor.hooks import FanOut
from supervisor.reload.outcome import ReloadResult
from supervisor.reload.transaction import ACCEPT_STOP_WAIT_SECONDS
from supervisor.sockets import Listener
from supervisor.workers.handle import WorkerState

_pids = itertools.count(1000)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeWorker:
    """Same surface as WorkerProcess; the test decides when it is ready or exits."""

    def __init__(
        self, clock: Clock, generation: int, slot: int, restarts: int, config: Config
    ) -> None:
        self.clock = clock
        self.generation, self.slot, self.restarts, self.config = generation, slot, restarts, config
        self.pid = next(_pids)
        self.state = WorkerState.STARTING
        self.status_fd = None
        self.error: str | None = None
        self.fatal_code: int | None = None
        self.returncode: int | None = None
        self.started_at = self.last_heartbeat = clock.now
        self.kill_deadline: float | None = None
        self.stop_requested = False
        self.stopped_accepting = False
        #: Test control: a drained worker says at once that it stopped accepting.
        self.acks_drain = True
        self.signals: list[int] = []
        self._exit: int | None = None

    @property
    def alive(self) -> bool:
        return self.state is not WorkerState.EXITED

    # test controls
    def become_ready(self) -> None:
        self.state = WorkerState.READY
        self.last_heartbeat = self.clock.now

    def fail(self, error: str, code: int = 4) -> None:
        self.error, self.fatal_code = error, code
        self._exit = code

    def exit(self, code: int) -> None:
        self._exit = code

    # WorkerProcess surface
    def poll(self) -> bool:
        if self._exit is None or self.state is WorkerState.EXITED:
            return False
        self.returncode = self._exit
        self.state = WorkerState.EXITED
        return True

    def read_status(self) -> list[Any]:
        return []

    def signal(self, sig: int) -> None:
        if self.alive:
            self.signals.append(sig)

    def drain(self, timeout: float) -> None:
        if self.state in (WorkerState.EXITED, WorkerState.DRAINING):
            return
        self.state = WorkerState.DRAINING
        self.stop_requested = True
        self.kill_deadline = self.clock.now + timeout
        self.signal(signal.SIGTERM)
        self.stopped_accepting = self.acks_drain

    def kill(self) -> None:
        self.stop_requested = True
        self.signal(signal.SIGKILL)
        self.kill_deadline = None
        if self.alive:
            self._exit = -9

    def kill_and_wait(self) -> bool:
        self.kill()
        self.poll()
        return True

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": str(self.state), "generation": self.generation}


class SameConfig:
    """Workers receive the config as loaded (no embedded Redis, no control socket)."""

    def prepare(self, config: Config) -> Config:
        return config


def loaded(**server: Any) -> LoadedConfig:
    base = {
        "workers": 2,
        "port": 18000,
        "graceful_shutdown_timeout_seconds": 5.0,
        "reload_readiness_timeout_seconds": 10.0,
    }
    config = Config.model_validate(
        {
            "server": {**base, **server},
            "supervisor": {"restart_backoff_max_seconds": 8.0, "heartbeat_timeout_seconds": 3.0},
        }
    )
    digest = hashlib.sha256(json.dumps(dump_with_secrets(config), sort_keys=True).encode())
    return LoadedConfig(config, {}, digest.hexdigest()[:16], ())


class Env:
    def __init__(self) -> None:
        self.clock = Clock()
        self.workers: list[FakeWorker] = []
        self.next_config: LoadedConfig | Exception = loaded()
        self.sock = socket.socket()
        listener = Listener(self.sock, "0.0.0.0", 18000)
        self.core = assemble(
            ConfigInputs(env={}),
            loaded(),
            [listener],
            factory=self.factory,
            hooks=FanOut(),
            preparer=SameConfig(),
            clock=self.clock,
            loader=self.load,
        )
        self.arbiter = self.core.arbiter
        self.inbox = self.core.inbox

    def factory(
        self, generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> FakeWorker:
        w = FakeWorker(self.clock, generation, slot, restarts, config)
        self.workers.append(w)
        return w

    def load(self, _inputs: ConfigInputs) -> LoadedConfig:
        if isinstance(self.next_config, Exception):
            raise self.next_config
        return self.next_config

    def live(self, generation: int | None = None) -> list[FakeWorker]:
        return [
            w
            for w in self.workers
            if w.alive and (generation is None or w.generation == generation)
        ]

    def boot(self) -> None:
        self.arbiter.start()
        for w in self.live():
            w.become_ready()
        assert self.arbiter.step() is None
        assert self.arbiter.booted

    def signal(self, *signums: int) -> None:
        """What the signal handler does (the loop dispatches later)."""
        for signum in signums:
            self.inbox.on_signal(signum, None)

    def hup(self) -> None:
        self.signal(signal.SIGHUP)
        self.arbiter.dispatch()


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.sock.close()
    e.inbox.close()


def test_first_generation_starts_desired_workers_and_boots(env: Env) -> None:
    env.arbiter.start()
    assert len(env.live(1)) == 2
    assert env.arbiter.step() is None and not env.arbiter.booted
    for w in env.live():
        w.become_ready()
    assert env.arbiter.step() is None
    assert env.arbiter.booted


def test_first_generation_failure_exits_1_with_the_worker_error(env: Env) -> None:
    env.arbiter.start()
    env.live()[0].fail("Redis did not answer PING: refused")
    assert env.arbiter.step() == 1
    assert "Redis did not answer PING" in (env.arbiter.boot_error or "")
    assert all(signal.SIGKILL in w.signals for w in env.workers if w.fatal_code is None)


def test_reload_starts_generation_then_drains_old_then_commits(env: Env) -> None:
    env.boot()
    old = env.live(1)
    env.next_config = loaded(workers=3)
    env.hup()
    assert env.arbiter.step() is None
    new = env.live(2)
    assert len(new) == 3
    assert all(w.state == WorkerState.READY for w in old)  # untouched until N+1 is ready
    for w in new:
        w.become_ready()
    env.arbiter.step()
    assert all(w.state == WorkerState.DRAINING and signal.SIGTERM in w.signals for w in old)
    # Committed as soon as N+1 serves; the transaction lasts until N has drained.
    assert (env.arbiter.version, env.arbiter.generation) == (2, 2)
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "committed"
    assert env.arbiter.last_reload.changed == ["server.workers"]
    assert env.arbiter.reload is not None
    for w in old:
        w.exit(0)
    env.arbiter.step()
    assert env.arbiter.reload is None


class Asker:
    """A `redis-gateway reload` waiting on the control socket."""

    def __init__(self) -> None:
        self.replies: list[Mapping[str, object]] = []

    def reply(self, payload: Mapping[str, object]) -> None:
        self.replies.append(payload)


def _commit_asked(env: Env) -> tuple[Asker, list[FakeWorker]]:
    """A reload asked over the control socket, committed; old workers not acking."""
    env.boot()
    old = env.live(1)
    for w in old:
        w.acks_drain = False
    env.next_config = loaded(workers=3)
    asker = Asker()
    env.inbox.request_reload("control socket", asker)
    env.arbiter.dispatch()
    env.arbiter.step()
    for w in env.live(2):
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None  # committed: status says so at once
    assert env.arbiter.last_reload.result == "committed" and env.arbiter.version == 2
    return asker, old


def test_a_committed_reload_is_answered_once_no_old_worker_accepts(env: Env) -> None:
    """After the answer, a new connection always reaches the new generation: the old
    workers' ``draining`` message (sent once their listeners are closed) is waited for
    (regression: a request made right after `redis-gateway reload` returned could
    still be served by the old config)."""
    asker, old = _commit_asked(env)
    assert asker.replies == []
    old[0].stopped_accepting = True
    env.arbiter.step()
    assert asker.replies == []
    old[1].exit(0)  # gone counts as not accepting
    env.arbiter.step()
    assert [r["ok"] for r in asker.replies] == [True]


def test_an_old_worker_that_never_says_it_stopped_accepting_delays_the_answer_2s(
    env: Env,
) -> None:
    asker, _old = _commit_asked(env)
    env.clock.now += ACCEPT_STOP_WAIT_SECONDS - 0.1
    env.arbiter.step()
    assert asker.replies == []
    env.clock.now += 0.2
    env.arbiter.step()
    assert [r["ok"] for r in asker.replies] == [True]


def test_a_held_answer_is_given_when_the_supervisor_stops(env: Env) -> None:
    asker, _old = _commit_asked(env)
    env.arbiter.stop(graceful=True)
    assert [r["ok"] for r in asker.replies] == [True]


def test_invalid_config_keeps_serving_and_counts_invalid(env: Env) -> None:
    env.boot()
    env.next_config = ConfigError(["server.workers: Input should be a valid integer"])
    env.hup()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "invalid"
    assert env.arbiter.last_reload.errors == ["server.workers: Input should be a valid integer"]
    assert env.arbiter.reload_counts[ReloadResult("invalid")] == 1
    assert len(env.live(1)) == 2 and env.arbiter.version == 1


def test_unchanged_config_is_a_no_op(env: Env) -> None:
    env.boot()
    env.hup()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "unchanged"
    assert len(env.workers) == 2


def test_new_worker_failing_reverts_and_stops_the_new_generation(env: Env) -> None:
    env.boot()
    env.next_config = loaded(workers=2, keepalive_timeout_seconds=9.0)
    env.hup()
    env.arbiter.step()
    new = env.live(2)
    new[0].become_ready()
    new[1].fail("Redis did not answer PING")
    env.arbiter.step()
    outcome = env.arbiter.last_reload
    assert outcome is not None and outcome.result == "readiness_failed"
    assert f"worker {new[1].pid}: Redis did not answer PING" in (outcome.error or "")
    assert signal.SIGTERM in new[0].signals
    assert (env.arbiter.generation, env.arbiter.version) == (1, 1)
    assert all(w.state == WorkerState.READY for w in env.live(1))


def test_readiness_timeout_reverts(env: Env) -> None:
    env.boot()
    env.next_config = loaded(workers=2, reload_readiness_timeout_seconds=2.0)
    env.hup()
    env.arbiter.step()
    env.clock.now += 2.5
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "readiness_failed"
    assert "not ready within 2.0s" in (env.arbiter.last_reload.error or "")


def test_triggers_during_a_reload_coalesce_into_one_more(env: Env) -> None:
    env.boot()
    env.next_config = loaded(workers=3)
    env.hup()
    env.arbiter.step()
    env.hup()
    env.hup()
    env.inbox.request_reload("watch")
    env.arbiter.dispatch()
    for w in env.live(2):
        w.become_ready()
    env.arbiter.step()
    for w in env.live(1):
        w.exit(0)
    env.arbiter.step()  # commits, then starts the single coalesced reload
    assert env.arbiter.reload_counts == {"committed": 1, "unchanged": 1}
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.trigger == "SIGHUP,watch"


def test_crashed_worker_is_replaced_with_exponential_backoff(env: Env) -> None:
    env.boot()
    delays = []
    for _ in range(5):
        victim = env.live(1)[0]
        victim.exit(1)
        env.arbiter.step()
        start = env.clock.now
        while len(env.live(1)) < 2:
            env.clock.now += 0.25
            for w in env.live(1):
                w.last_heartbeat = env.clock.now
            env.arbiter.step()
        delays.append(env.clock.now - start)
        env.live(1)[-1].become_ready()
    assert delays[0] <= 0.5 and delays[1] >= 1.0 and delays[2] >= 2.0
    assert max(delays) <= 8.0 + 0.25  # capped at restart_backoff_max_seconds
    assert sum(w.restarts for w in env.live(1)) == 5  # per slot: 3 + 2


def test_missed_heartbeats_escalate_to_sigterm_then_sigkill(env: Env) -> None:
    env.boot()
    stuck = env.live(1)[0]
    env.live(1)[1].last_heartbeat = env.clock.now + 3.5
    env.clock.now += 3.5
    env.arbiter.step()
    assert stuck.signals == [signal.SIGTERM]
    assert len([w for w in env.live(1) if w.state != WorkerState.DRAINING]) == 2  # replaced
    env.clock.now += 3.1
    env.arbiter.step()
    assert signal.SIGKILL in stuck.signals


def test_sigterm_drains_everything_then_exits_0(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGTERM)
    env.arbiter.dispatch()
    assert env.arbiter.step() is None
    assert all(signal.SIGTERM in w.signals for w in env.workers)
    for w in env.workers:
        w.exit(0)
    assert env.arbiter.step() == 0


def test_sigquit_is_a_fast_stop(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGQUIT)
    env.arbiter.dispatch()
    env.arbiter.step()
    assert all(w.signals == [signal.SIGQUIT] for w in env.workers)
    env.clock.now += 2.5
    env.arbiter.step()
    assert all(signal.SIGKILL in w.signals for w in env.workers)
    assert env.arbiter.step() == 0


def test_ttin_ttou_change_the_worker_count_and_usr1_is_forwarded(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGTTIN)
    env.arbiter.dispatch()
    env.arbiter.step()
    assert len(env.live(1)) == 3
    env.signal(signal.SIGTTOU)
    env.signal(signal.SIGUSR1)
    env.arbiter.dispatch()
    env.arbiter.step()
    draining = [w for w in env.live(1) if w.state == WorkerState.DRAINING]
    assert len(draining) == 1
    assert all(signal.SIGUSR1 in w.signals for w in env.live(1))


def test_status_reports_generation_workers_and_last_reload(env: Env) -> None:
    env.boot()
    env.hup()
    env.arbiter.step()
    st: dict[str, Any] = env.arbiter.status()
    assert (st["generation"], st["version"], st["desired_workers"]) == (1, 1, 2)
    assert len(st["workers"]) == 2
    assert st["last_reload"]["result"] == "unchanged"


def test_generation_numbers_are_never_reused_after_a_failed_reload(env: Env) -> None:
    env.boot()
    env.next_config = loaded(workers=1)
    env.hup()
    env.arbiter.step()
    env.live(2)[0].fail("boom")
    env.arbiter.step()
    env.hup()
    env.arbiter.step()
    assert [w.generation for w in env.live() if w.state == WorkerState.STARTING] == [3]
    env.live(3)[0].become_ready()
    env.arbiter.step()
    for w in env.live(1):
        w.exit(0)
    env.arbiter.step()
    assert (env.arbiter.generation, env.arbiter.version) == (3, 2)


def test_second_sigint_turns_a_graceful_stop_into_a_fast_one(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGINT)
    env.arbiter.dispatch()
    assert env.arbiter.stopping == "graceful"
    env.signal(signal.SIGINT)
    env.arbiter.dispatch()
    assert env.arbiter.stopping == "fast"
    assert all(w.signals == [signal.SIGTERM, signal.SIGQUIT] for w in env.workers)


def test_a_crashing_loader_or_fork_failure_fails_the_reload_not_the_supervisor(
    env: Env,
) -> None:
    env.boot()
    env.next_config = KeyError("bug in a config source")
    env.hup()
    assert env.arbiter.step() is None
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "error"
    assert "KeyError" in (env.arbiter.last_reload.error or "")

    def no_fork(
        generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> FakeWorker:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    env.next_config = loaded(workers=3)
    env.core.pool.factory = no_fork
    env.hup()
    assert env.arbiter.step() is None
    assert env.arbiter.last_reload.result == "error"
    assert "cannot start workers" in (env.arbiter.last_reload.error or "")
    assert (env.arbiter.version, len(env.live(1))) == (1, 2)


def _commit(env: Env, config: LoadedConfig) -> None:
    """Reload to ``config``: every new worker becomes ready, the old generation exits."""
    old = env.live(env.arbiter.generation)
    env.next_config = config
    env.hup()
    env.arbiter.step()
    new = [w for w in env.live() if w.generation > env.arbiter.generation]
    for w in new:
        w.become_ready()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "committed"
    for w in old:
        w.exit(0)
    env.arbiter.step()


def test_a_signal_set_worker_count_survives_a_reload_that_keeps_server_workers(
    env: Env,
) -> None:
    env.boot()
    env.signal(signal.SIGTTIN)
    env.arbiter.dispatch()
    env.arbiter.step()
    st = env.arbiter.status()
    assert (st["desired_workers"], st["desired_workers_source"]) == (
        3,
        "SIGTTIN (server.workers = 2)",
    )
    _commit(env, loaded(keepalive_timeout_seconds=9.0))  # server.workers stays 2
    assert len(env.live(2)) == 3  # the new generation started with the scaled count
    st = env.arbiter.status()
    assert (st["desired_workers"], st["desired_workers_source"]) == (
        3,
        "SIGTTIN (server.workers = 2)",
    )
    env.arbiter.step()
    assert len(env.live(2)) == 3  # and keeps it: nothing drained, nothing added


def test_a_reload_that_changes_server_workers_resets_the_signal_set_count(env: Env) -> None:
    env.boot()
    env.signal(signal.SIGTTOU)
    env.arbiter.dispatch()
    env.arbiter.step()
    assert env.arbiter.status()["desired_workers_source"] == "SIGTTOU (server.workers = 2)"
    with structlog.testing.capture_logs() as logs:
        _commit(env, loaded(workers=4))
    [reset] = [e for e in logs if e["event"] == "workers.scale_reset"]
    assert (reset["old"], reset["new"]) == (1, 4)
    assert reset["reason"] == "server.workers changed (2 -> 4)"
    st = env.arbiter.status()
    assert (st["desired_workers"], st["desired_workers_source"]) == (4, "server.workers")
    assert len(env.live(2)) == 4


def test_workers_crashing_together_wait_one_backoff_round(env: Env) -> None:
    env.boot()
    for w in env.live(1):
        w.exit(1)
    with structlog.testing.capture_logs() as logs:
        env.arbiter.step()
    crashed = [e for e in logs if e["event"] == "worker.crashed"]
    assert [e["consecutive_crashes"] for e in crashed] == [1, 1]
    assert [e["restart_in"] for e in crashed] == [0.5, 0.5]
    env.clock.now += 0.5
    env.arbiter.step()
    # Nothing serves: one probe replaces them first (test_arbiter_crash_loop.py) ...
    [probe] = env.live(1)
    probe.become_ready()
    env.arbiter.step()
    assert len(env.live(1)) == 2  # ... and the other slot starts once it is ready
    env.live(1)[1].become_ready()
    env.live(1)[0].exit(1)
    with structlog.testing.capture_logs() as logs:
        env.arbiter.step()
    [crash] = [e for e in logs if e["event"] == "worker.crashed"]
    assert (crash["consecutive_crashes"], crash["restart_in"]) == (2, 1.0)


def test_a_fork_failure_half_way_stops_the_workers_already_started(env: Env) -> None:
    env.boot()
    started: list[FakeWorker] = []

    def fork_once(
        generation: int, slot: int, restarts: int, config: Config, listeners: list[Listener]
    ) -> FakeWorker:
        if started:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        started.append(env.factory(generation, slot, restarts, config, listeners))
        return started[0]

    env.next_config = loaded(workers=3)
    env.core.pool.factory = fork_once
    env.hup()
    env.arbiter.step()
    assert env.arbiter.last_reload is not None
    assert env.arbiter.last_reload.result == "error"
    assert started[0].state == WorkerState.DRAINING and signal.SIGTERM in started[0].signals
    assert (env.arbiter.version, len([w for w in env.live(1) if w.state == WorkerState.READY])) == (
        1,
        2,
    )
