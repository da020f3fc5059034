"""Worker entry point: ``python -m gateway_worker``.

Supervised (started by the supervisor, see ``gateway_worker.contract``)::

    python -m gateway_worker --supervised --listen-fd N --config-fd C --status-fd S

Standalone, for development (binds the address itself, no supervisor)::

    python -m gateway_worker --config gateway.toml

Imports are kept lean (no supervisor, no click): worker boot time is most of a
reload's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from gateway_worker.config import Config
from gateway_worker.contract import ExitCode, decode_config
from gateway_worker.pipes import (
    ConfigPipeWatch,
    Heartbeat,
    StatusChannel,
    read_config_line,
)


def parse_config(raw: bytes | Mapping[str, object]) -> Config:
    data = json.loads(raw) if isinstance(raw, bytes) else raw
    return Config.model_validate(data)


def format_validation_error(exc: ValidationError) -> str:
    # hide_input_in_errors is on for every model, so no value (secret) is printed.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )


#: Operator escape hatch: "asyncio" forces the stdlib event loop (default: uvloop
#: when importable), e.g. to rule uvloop out while debugging.
LOOP_ENV = "GATEWAY_WORKER_LOOP"  # not REDIS_GATEWAY_*: that prefix is config


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available (and not disabled by $GATEWAY_WORKER_LOOP)."""
    if os.environ.get(LOOP_ENV, "auto") != "asyncio":
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
        except ImportError:  # pragma: no cover
            pass
    return asyncio.new_event_loop()


async def serve(
    config: Config,
    sockets: list[socket.socket],
    status: StatusChannel,
    config_fd: int | None = None,
    generation: int = 0,
) -> int:
    """Start the app, serve until told to stop, drain; return the exit code."""
    import structlog

    from gateway_worker.app import BootError, build_app
    from gateway_worker.observability import metrics
    from gateway_worker.observability.logging import reopen_logs
    from gateway_worker.serving.drain import DrainPolicy
    from gateway_worker.serving.pending import PendingPolicy
    from gateway_worker.serving.server import WorkerServer, uvicorn_config

    log = structlog.get_logger("redis_gateway.worker")
    metrics.get().set_generation(generation)
    app = build_app(config)
    try:
        await app.startup()
    except BootError as exc:
        return status.fatal(str(exc), ExitCode.BOOT_ERROR)
    heartbeat = Heartbeat(status, config.supervisor.heartbeat_interval_seconds)

    def on_started() -> None:
        _freeze_startup_heap()
        status.send({"type": "ready"})
        log.info("worker.ready", listen=[_addr(s) for s in sockets])
        heartbeat.start()

    def on_draining() -> None:
        status.send({"type": "draining"})
        log.info("worker.draining", streams=len(app.streams.registry))
        app.begin_drain()

    server = WorkerServer(
        uvicorn_config(app, config),
        on_started=on_started,
        on_draining=on_draining,
        on_reopen_logs=reopen_logs,
        idle_grace=DrainPolicy.from_config(config.server).idle_grace_seconds,
        pending=PendingPolicy.from_config(config.server),
    )

    def on_supervisor_gone() -> None:
        log.warning("worker.orphaned")
        server.request_drain()

    watch = ConfigPipeWatch(config_fd, on_supervisor_gone) if config_fd is not None else None
    try:
        await server.serve(sockets=sockets)
    finally:
        heartbeat.stop()
        await app.shutdown()
    exit_code = ExitCode.ORPHANED if watch is not None and watch.orphaned else ExitCode.OK
    log.info("worker.exited", code=int(exit_code))
    return int(exit_code)


def _freeze_startup_heap() -> None:
    """Everything imported and built so far lives as long as the worker: out of the
    cyclic GC's sight, a full collection no longer walks it (~16 ms each, a pause every
    few seconds under load otherwise; benchmarks/THROUGHPUT.md)."""
    gc.collect()
    gc.freeze()


def _addr(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    if isinstance(name, tuple):
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(name)


def preload() -> None:
    """Import the heavy modules before waiting for the config.

    A standby worker (spawned ahead of a reload) is then ready a few tens of
    milliseconds after its config arrives; for a normal spawn the order changes nothing.
    """
    import gateway_worker.app
    import gateway_worker.observability.logging
    import gateway_worker.serving.server  # noqa: F401 - imported for the side effect of loading


def run_supervised(listen_fds: Sequence[int], config_fd: int, status_fd: int) -> int:
    status = StatusChannel(status_fd)
    try:
        preload()
    except Exception as exc:
        return status.fatal(f"worker cannot import its modules: {exc!r}", ExitCode.CRASH)
    try:
        raw = read_config_line(config_fd)
    except OSError as exc:
        return status.fatal(f"cannot read the config pipe: {exc}", ExitCode.CRASH)
    if raw is None:
        return int(ExitCode.ORPHANED)
    try:
        message = decode_config(raw)
        config = parse_config(message["config"])
    except ValidationError as exc:
        return status.fatal(
            f"invalid config from supervisor: {format_validation_error(exc)}",
            ExitCode.CONFIG_ERROR,
        )
    except ValueError as exc:
        return status.fatal(f"unreadable config from supervisor: {exc}", ExitCode.CONFIG_ERROR)
    sockets = [socket.socket(fileno=fd) for fd in listen_fds]
    who = {"generation": message["generation"], "slot": message["slot"]}
    return _run(config, sockets, status, config_fd, who)


def _run(
    config: Config,
    sockets: list[socket.socket],
    status: StatusChannel,
    config_fd: int | None,
    who: Mapping[str, int] | None = None,
) -> int:
    from gateway_worker.observability.logging import configure_logging

    try:
        configure_logging(
            config.observability.logging, process="worker", pid=os.getpid(), **(who or {})
        )
    except OSError as exc:
        return status.fatal(
            f"observability.logging.output {config.observability.logging.output!r}: "
            f"cannot open: {exc.strerror or exc}",
            ExitCode.BOOT_ERROR,
        )
    with asyncio.Runner(loop_factory=new_loop) as runner:
        try:
            generation = who["generation"] if who else 0
            return runner.run(serve(config, sockets, status, config_fd, generation))
        except Exception as exc:
            return status.fatal(f"worker crashed: {type(exc).__name__}: {exc}", ExitCode.CRASH)


def run_standalone(path: Path) -> int:
    """Development mode: load one config file, bind the address, serve."""
    status = StatusChannel(None)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data: Mapping[str, object] = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
        config = parse_config(data)
    except (OSError, ValueError) as exc:
        msg = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        return status.fatal(f"{path}: {msg}", ExitCode.CONFIG_ERROR)
    family = socket.AF_INET6 if ":" in config.server.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.server.host, config.server.port))
    except OSError as exc:
        sock.close()
        return status.fatal(
            f"cannot bind {config.server.host}:{config.server.port}: {exc}", ExitCode.BOOT_ERROR
        )
    sock.listen(2048)
    return _run(config, [sock], status, None)


def main(argv: Sequence[str] | None = None, exit_: Callable[[int], object] = sys.exit) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway_worker")
    parser.add_argument("--supervised", action="store_true")
    parser.add_argument("--listen-fd", type=int, action="append", default=[])
    parser.add_argument("--config-fd", type=int)
    parser.add_argument("--status-fd", type=int)
    parser.add_argument("--config", type=Path, help="standalone mode: config file (TOML/JSON)")
    args = parser.parse_args(argv)
    if args.supervised:
        if not args.listen_fd or args.config_fd is None or args.status_fd is None:
            parser.error("--supervised needs --listen-fd, --config-fd and --status-fd")
        exit_(run_supervised(args.listen_fd, args.config_fd, args.status_fd))
    elif args.config is not None:
        exit_(run_standalone(args.config))
    else:
        parser.error("give --config FILE (standalone) or --supervised ...")


if __name__ == "__main__":
    main()
