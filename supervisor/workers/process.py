"""One worker as the supervisor sees it: spawn, pipes, state, heartbeat, signals.

The wire format (argv, pipes, messages, exit codes) is ``gateway_worker.contract``.
Everything here is non-blocking and driven by the arbiter's single main loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import structlog

from gateway_worker.config import Config, dump_with_secrets
from gateway_worker.contract import ExitCode, StatusMessage, decode_message, encode_config
from supervisor.workers.handle import WorkerState

__all__ = ["WorkerProcess", "WorkerState", "describe_exit"]

log = structlog.get_logger("redis_gateway.worker_process")


class WorkerProcess:
    """A worker process of one generation (a ``supervisor.worker_handle.WorkerHandle``)."""

    def __init__(self, generation: int, slot: int, restarts: int = 0) -> None:
        self.generation = generation
        self.slot = slot
        self.restarts = restarts
        self.state = WorkerState.STARTING
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = time.monotonic()
        self.last_heartbeat = self.started_at
        self.kill_deadline: float | None = None
        self.stop_requested = False
        self.stopped_accepting = False
        self.became_ready = False
        self.error: str | None = None
        self.fatal_code: int | None = None
        self.returncode: int | None = None
        self.status_fd: int | None = None
        self._config_fd: int | None = None
        self._buffer = b""
        self.listen_fds: tuple[int, ...] = ()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        return self.state is not WorkerState.EXITED

    def spawn(
        self,
        config: Config | None,
        listen_fds: Sequence[int],
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the interpreter and hand it the config over a private pipe.

        With ``config=None`` the worker is a warm *standby*: it imports everything,
        then waits on the pipe; ``send_config`` later makes it a worker in seconds'
        fraction instead of a full interpreter boot.
        """
        cfg_r, cfg_w = os.pipe()
        st_r, st_w = os.pipe()
        self.listen_fds = tuple(listen_fds)
        argv = [sys.executable, "-m", "gateway_worker", "--supervised"]
        for fd in listen_fds:
            argv += ["--listen-fd", str(fd)]
        argv += ["--config-fd", str(cfg_r), "--status-fd", str(st_w)]
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(*listen_fds, cfg_r, st_w),
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                # Own session: a terminal's Ctrl+C / hangup reaches the supervisor only,
                # which then drains the workers instead of them dying mid-request.
                start_new_session=True,
            )
        except OSError:
            for fd in (cfg_r, cfg_w, st_r, st_w):
                os.close(fd)
            raise
        os.close(cfg_r)
        os.close(st_w)
        os.set_blocking(st_r, False)
        self.status_fd = st_r
        self._config_fd = cfg_w
        # The write end stays open for the worker's whole life: its EOF tells the
        # worker that the supervisor is gone.
        if config is not None:
            self.send_config(config)

    def send_config(self, config: Config) -> None:
        """Write the one config line (starts a standby worker's app)."""
        assert self._config_fd is not None
        self.started_at = self.last_heartbeat = time.monotonic()
        line = encode_config(self.generation, self.slot, dump_with_secrets(config))
        try:
            # Blocking write: the child reads it at once; configs are a few kB.
            os.write(self._config_fd, line)
        except OSError as exc:
            self.error = f"could not send the config: {exc}"

    def read_status(self) -> list[StatusMessage]:
        """Drain the status pipe; updates state. Returns the messages read."""
        if self.status_fd is None:
            return []
        messages: list[StatusMessage] = []
        while True:
            try:
                chunk = os.read(self.status_fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._close_status()
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                msg = decode_message(line)
            except ValueError:
                log.warning(
                    "worker.bad_status_line",
                    worker_pid=self.pid,
                    line=line[:200].decode(errors="replace"),
                )
                continue
            self.handle_message(msg)
            messages.append(msg)
        return messages

    def handle_message(self, msg: StatusMessage) -> None:
        now = time.monotonic()
        kind = msg.get("type")
        self.last_heartbeat = now
        if kind == "ready" and self.state is WorkerState.STARTING:
            self.state = WorkerState.READY
            self.became_ready = True
        elif kind == "draining":
            self.stopped_accepting = True
        elif kind == "fatal":
            self.error = str(msg.get("error", "fatal error"))
            self.fatal_code = int(msg.get("code", ExitCode.CRASH))

    def _close_status(self) -> None:
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None

    def poll(self) -> bool:
        """Reap the process if it exited; True when it just did."""
        if self.proc is None or self.state is WorkerState.EXITED:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        self.read_status()
        self.returncode = code
        self.state = WorkerState.EXITED
        self._close_status()
        if self._config_fd is not None:
            os.close(self._config_fd)
            self._config_fd = None
        if self.error is None and code != 0 and self.fatal_code is None:
            when = "after it had been ready" if self.became_ready else "before it was ready"
            self.error = f"exited with {describe_exit(code)} {when}"
        return True

    def signal(self, sig: int) -> None:
        if self.proc is None or self.state is WorkerState.EXITED:
            return
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def drain(self, timeout: float) -> None:
        """SIGTERM now; SIGKILL if still alive after ``timeout`` seconds."""
        if self.state in (WorkerState.EXITED, WorkerState.DRAINING):
            return
        self.state = WorkerState.DRAINING
        self.stop_requested = True
        self.kill_deadline = time.monotonic() + timeout
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.stop_requested = True
        self.kill_deadline = None
        self.signal(signal.SIGKILL)

    def kill_and_wait(self) -> bool:
        """SIGKILL it if alive and wait for the process (teardown); False if it never ran."""
        if self.alive:
            self.kill()
        if self.proc is None:
            return False
        self.proc.wait()
        return True

    def close(self) -> None:
        """Release the pipes of an exited worker."""
        self._close_status()
        if self._config_fd is not None:
            os.close(self._config_fd)
            self._config_fd = None

    def describe(self) -> dict[str, object]:
        """JSON-able view for `redis-gateway status`."""
        return {
            "pid": self.pid,
            "generation": self.generation,
            "slot": self.slot,
            "state": str(self.state),
            "age_seconds": round(time.monotonic() - self.started_at, 1),
            "restarts": self.restarts,
            "last_heartbeat_seconds_ago": round(time.monotonic() - self.last_heartbeat, 1),
        }


def describe_exit(code: int) -> str:
    """'code 4 (BOOT_ERROR)' / 'signal SIGKILL'."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    try:
        return f"code {code} ({ExitCode(code).name})"
    except ValueError:
        return f"code {code}"
