"""Assemble and run a supervisor: config, sockets, embedded Redis, control socket,
watcher, metrics, systemd, signals, then the arbiter's loop. Tears it all down after.

Used by `redis-gateway run`; every piece is its own module, this file only wires them.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway_worker.config import Config
from supervisor import logging as sup_logging
from supervisor.arbiter import SIGNALS, Arbiter, Hooks
from supervisor.config import ConfigError, ConfigInputs, LoadedConfig
from supervisor.control import ControlConnection, ControlError, ControlServer, default_socket_path
from supervisor.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from supervisor.reload import ReloadOutcome
from supervisor.services import ServiceError, Services
from supervisor.sockets import BindError, Listener, bind, from_systemd
from supervisor.worker_process import WorkerProcess, WorkerState

log = structlog.get_logger("redis_gateway.supervisor")

#: Pre-imported standby workers kept ready (at most this many, and at most the
#: worker count): a reload or a crash replacement then skips the interpreter boot
#: (~0.3 s of CPU each), which is most of a reload's latency.
STANDBY_MAX = 4
STANDBY_SPAWN_INTERVAL_SECONDS = 0.1


def trim_memory() -> None:
    """Hand the heap freed by start-up or a reload back to the OS (glibc malloc_trim).

    Loading and validating a config allocates and frees megabytes (pydantic schemas,
    parsed files); glibc keeps those pages, so the supervisor's RSS would stay at its
    peak. A no-op where there is no glibc (musl, macOS).
    """
    gc.collect()  # cyclic garbage of the config load first, so its pages are free too
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class StartupError(Exception):
    """The supervisor cannot start; the message is printed and `run` exits 1."""


def wants_embedded_redis(config: Config) -> bool:
    return (config.profile == "dev" and config.redis.url is None
            and config.supervisor.embedded_redis)


class Runtime(Services, Hooks):
    """The live supervisor's resources and the arbiter's side effects."""

    def __init__(self, inputs: ConfigInputs, loaded: LoadedConfig) -> None:
        self.inputs = inputs
        self.loaded = loaded
        self.embedded: EmbeddedRedis | None = None
        self.control: ControlServer | None = None
        self.control_path = ""
        self.watcher: Any = None
        self.metrics: Any = None
        self.metrics_server: Any = None
        self.multiproc: Any = None
        self.notifier: Any = None
        self.listeners: list[Listener] = []
        self.arbiter: Arbiter | None = None
        # Warm standby workers: imported everything, waiting for a config.
        self.standby: list[tuple[WorkerProcess, list[Listener]]] = []
        self._next_standby_at = 0.0
        self._last_watchdog = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- assembly ------------------------------------------------------------------------

    def setup(self) -> None:
        config = self.loaded.config
        from supervisor.systemd import Notifier, listen_fds

        self.notifier = Notifier.from_env()
        passed = listen_fds()
        if passed:
            self.listeners = from_systemd(passed)
        else:
            try:
                self.listeners = [bind(config.server.host, config.server.port)]
            except BindError as exc:
                raise StartupError(str(exc)) from exc
        if wants_embedded_redis(config):
            self._start_embedded()
        self.control_path = config.supervisor.control_socket or default_socket_path(
            config.server.port)
        try:
            self.control = ControlServer(self.control_path, self._on_control)
        except ControlError as exc:
            raise StartupError(str(exc)) from exc
        try:
            self._setup_metrics(config)
        except ServiceError as exc:
            raise StartupError(str(exc)) from exc
        self.arbiter = Arbiter(
            self.inputs, self.loaded, self.listeners,
            prepare_config=self.prepare_config, worker_factory=self.spawn, hooks=self,
        )
        if config.supervisor.watch_config:
            self._start_watcher(config)

    def _start_embedded(self) -> None:
        self.embedded = EmbeddedRedis()
        try:
            self.embedded.start()
        except EmbeddedRedisError as exc:
            raise StartupError(f"embedded Redis: {exc}") from exc
        log.info("embedded_redis.started", url=self.embedded.url)

    def prepare_config(self, config: Config) -> Config:
        """The config a worker receives: embedded Redis URL and control socket filled in."""
        update: dict[str, Any] = {}
        # Before any worker for this config is spawned (a reload may turn metrics on).
        self.ensure_multiproc(config)
        if wants_embedded_redis(config):
            if self.embedded is None:
                self._start_embedded()
            assert self.embedded is not None
            update["redis"] = config.redis.model_copy(update={"url": self.embedded.url})
        update["supervisor"] = config.supervisor.model_copy(
            update={"control_socket": self.control_path})
        return config.model_copy(update=update)

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.multiproc is not None:
            env.update(self.multiproc.env())
        return env

    def spawn(self, generation: int, slot: int, restarts: int, config: Config,
              listeners: list[Listener]) -> WorkerProcess:
        """Worker factory: a warm standby when one holds these listeners, else a new one."""
        if restarts and self.metrics is not None:
            self.metrics.worker_restart()
        while self.standby:
            w, held = self.standby.pop(0)
            if w.poll() or len(held) != len(listeners) or any(
                    a is not b for a, b in zip(held, listeners, strict=True)):
                self._discard(w)
                continue
            w.generation, w.slot, w.restarts = generation, slot, restarts
            w.send_config(config)
            return w
        w = WorkerProcess(generation, slot, restarts)
        w.spawn(config, [lst.fd for lst in listeners], self._worker_env())
        return w

    def _discard_standby(self) -> None:
        for w, _ in self.standby:
            self._discard(w)
        self.standby.clear()

    def _discard(self, w: WorkerProcess) -> None:
        if w.alive:
            w.kill()
        if w.proc is not None:
            w.proc.wait()
            self.worker_exited(w.pid)
        w.close()

    def _replenish_standby(self) -> None:
        """Keep up to STANDBY_MAX pre-imported workers, while nothing else is going on."""
        arbiter = self.arbiter
        assert arbiter is not None
        for entry in list(self.standby):
            if entry[0].poll():
                self.standby.remove(entry)
                entry[0].close()
        if not arbiter.booted or arbiter.stopping:
            return
        if arbiter.reload is not None and arbiter.reload.phase != "draining":
            return  # while a new generation starts, it gets the CPU
        if any(w.state == WorkerState.STARTING for w in arbiter.workers):
            return  # let starting workers have the CPU
        target = min(arbiter.desired_workers, STANDBY_MAX)
        now = time.monotonic()
        if len(self.standby) < target and now >= self._next_standby_at:
            w = WorkerProcess(generation=0, slot=-1)
            w.spawn(None, [lst.fd for lst in arbiter.listeners], self._worker_env())
            self.standby.append((w, list(arbiter.listeners)))
            # One at a time: a burst of interpreter boots would steal CPU from serving.
            self._next_standby_at = now + STANDBY_SPAWN_INTERVAL_SECONDS

    # -- thread/signal entry points: enqueue + wake only -----------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so the loop is awake anyway

    def _on_file_change(self, reason: str, fingerprint: str) -> None:
        assert self.arbiter is not None
        self.arbiter.request_reload(f"watch: {reason}", fingerprint=fingerprint)
        self._wake()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        assert self.arbiter is not None
        self.arbiter.enqueue_signal(signum)

    def _on_control(self, request: dict[str, Any], conn: ControlConnection) -> None:
        assert self.arbiter is not None
        cmd = request.get("cmd")
        if cmd == "status":
            conn.reply({"ok": True, "status": {**self.arbiter.status(),
                                               "standby_workers": len(self.standby),
                                               "control_socket": self.control_path}})
        elif cmd == "reload":
            self.arbiter.request_reload("control socket", conn)
        else:
            conn.reply({"ok": False, "error": f"unknown cmd {cmd!r} (reload, status)"})

    # -- Hooks ---------------------------------------------------------------------------

    def ready(self, status: str) -> None:
        self.notifier.ready(status)
        trim_memory()

    def reloading(self) -> None:
        self.notifier.reloading()

    def inputs_read(self, fingerprint: str, settled: bool) -> None:
        self.inputs_seen(fingerprint, settled)

    def reload_finished(self, outcome: ReloadOutcome, status: str) -> None:
        if self.metrics is not None:
            self.metrics.reload(outcome.result, outcome.duration_seconds)
        text = status if not outcome.failed else f"{status}; last reload failed: {outcome.result}"
        if outcome.result == "held":
            text = f"{status}; a config change is held: apply it with `systemctl reload`"
        self.notifier.ready(text)
        trim_memory()

    def committed(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        config = loaded.config
        try:
            sup_logging.configure(config.observability.logging)
        except OSError as exc:  # keep the previous sink; the workers already use it
            log.error("logging.reconfigure_failed", error=str(exc))  # noqa: TRY400 - expected condition
        try:
            self._apply_watcher(config)
        except Exception as exc:  # e.g. inotify limits: the periodic re-check remains
            log.error("watch.reconfigure_failed", error=str(exc))  # noqa: TRY400 - expected condition
        assert self.arbiter is not None
        self._apply_metrics(config, self.arbiter.version)

    def stopping(self) -> None:
        self.notifier.stopping()

    def worker_exited(self, pid: int) -> None:
        if self.multiproc is not None:
            self.multiproc.worker_exited(pid)

    def reopen_logs(self) -> None:
        sup_logging.reopen_logs()

    def tick(self) -> None:
        """Once per loop iteration: worker gauges, systemd watchdog."""
        assert self.arbiter is not None
        if self.metrics is not None:
            counts = {str(s): 0 for s in WorkerState if s is not WorkerState.EXITED}
            for w in self.arbiter.workers:
                if str(w.state) in counts:
                    counts[str(w.state)] += 1
            self.metrics.set_workers(counts)
        interval = self.notifier.watchdog_interval()
        now = time.monotonic()
        if interval is not None and now - self._last_watchdog >= interval:
            # Sent from the main loop: a wedged loop stops the pings and systemd acts.
            self._last_watchdog = now
            self.notifier.watchdog()
        self._replenish_standby()

    # -- run / teardown ------------------------------------------------------------------

    def run(self) -> int:
        assert self.arbiter is not None and self.control is not None
        control = self.control
        old = {}
        for name in SIGNALS:
            sig = getattr(signal, f"SIG{name}")
            old[sig] = signal.signal(sig, self._on_signal)
        previous_wakeup = signal.set_wakeup_fd(self._wake_w)

        def extra() -> dict[int, Callable[[int], None]]:
            return dict.fromkeys(control.fds(), control.handle_readable)

        try:
            return self.arbiter.run(self._wake_r, extra, tick=self.tick)
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        self._stop_services()
        self._discard_standby()
        if self.arbiter is not None:
            for w in self.arbiter.workers:
                self._discard(w)
        if self.control is not None:
            self.control.close()
        if self.multiproc is not None:
            self.multiproc.cleanup()
        for lst in self.listeners:
            lst.close()
        if self.embedded is not None:
            self.embedded.stop()
            log.info("embedded_redis.stopped")
        if self.notifier is not None:
            self.notifier.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def run_supervisor(inputs: ConfigInputs, loaded: LoadedConfig, pidfile: Path | None) -> int:
    """`redis-gateway run` after the config was loaded; returns the exit code."""
    try:
        sup_logging.configure(loaded.config.observability.logging)
    except OSError as exc:
        print(f"redis-gateway: cannot start: observability.logging.output "
              f"{loaded.config.observability.logging.output!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    runtime = Runtime(inputs, loaded)
    try:
        try:
            runtime.setup()
        except StartupError as exc:
            log.error("supervisor.start_failed", error=str(exc))  # noqa: TRY400 - expected condition, no traceback
            print(f"redis-gateway: cannot start: {exc}", file=sys.stderr)
            return 1
        if pidfile is not None:
            try:
                pidfile.write_text(f"{os.getpid()}\n")
            except OSError as exc:
                print(f"redis-gateway: cannot start: --pidfile {pidfile}: {exc.strerror or exc}",
                      file=sys.stderr)
                pidfile = None
                return 1
        code = runtime.run()
        arbiter = runtime.arbiter
        if arbiter is not None and arbiter.boot_error:
            print(f"redis-gateway: the first generation could not boot: {arbiter.boot_error}",
                  file=sys.stderr)
        return code
    finally:
        runtime.close()
        if pidfile is not None:
            try:
                pidfile.unlink()
            except FileNotFoundError:
                pass


__all__ = ["ConfigError", "Runtime", "StartupError", "run_supervisor"]
