"""Which supervisor `redis-gateway reload|status` talk to, found without the config
being valid (the file may have just been broken: the reload must say so).

1. ``--control-socket PATH``: that socket.
2. Else the run file of the supervisor whose main config is the one named by
   ``-c``/``$REDIS_GATEWAY_CONFIG`` (absolute path; none named: a supervisor started
   without a config file), see ``supervisor.runtime_files``. Two such supervisors:
   an error naming both.
3. Else (e.g. a supervisor started with another ``$XDG_RUNTIME_DIR``) the socket the
   config implies (``supervisor.control_socket``, or the default path for
   ``server.port``), if the config is valid, or if it names its socket in readable
   layers while the rest is invalid (a pod whose Secret only the supervisor mirrors);
   otherwise an error.

Whichever way, the request says which supervisor it means (``expect``: the main config
path, and the pid from a run file), the supervisor refuses if it is another one, and
``mismatch`` checks the reply's ``supervisor`` section again on this side. Never "the
one socket in the default directory": that is how another supervisor got reloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway_worker.control_socket import JSONObject
from supervisor.config import ConfigError, ConfigInputs, load_config, peek_section
from supervisor.runtime_files import absolute_config_path, running, runtime_dir
from supervisor.triggers.control import default_socket_path


class LocateError(Exception):
    """No supervisor can be chosen; the message says why and what to pass."""


@dataclass(frozen=True)
class Target:
    """The socket to ask, what the request ``expect``s of the supervisor, and how the
    socket was found (for messages)."""

    socket: str
    found_by: str
    expect: JSONObject = field(default_factory=dict)


def _describe(config_path: str | None) -> str:
    return f"config {config_path}" if config_path else "no config file"


def locate(control_socket: str | None, config: Path | None, env: Mapping[str, str]) -> Target:
    """The supervisor meant by these options (see the module docstring)."""
    config_path = absolute_config_path(config)
    if control_socket:
        expect: JSONObject = {} if config is None else {"config_path": config_path}
        return Target(control_socket, "--control-socket", expect)
    runs = running(config_path)
    if len(runs) > 1:
        listed = ", ".join(f"pid {r.pid} at {r.control_socket}" for r in runs)
        raise LocateError(
            f"{len(runs)} supervisors run with {_describe(config_path)} ({listed}); "
            "pass --control-socket PATH"
        )
    if runs:
        run = runs[0]
        return Target(
            run.control_socket,
            f"run file {run.path}",
            {"config_path": config_path, "pid": run.pid},
        )
    inputs = ConfigInputs(config_path=config, env=env)
    try:
        loaded = load_config(inputs)
    except ConfigError as exc:
        named = _named_socket(inputs)
        if named is not None:
            how = "supervisor.control_socket of the (otherwise invalid) configuration"
            return Target(named, how, {"config_path": config_path})
        raise LocateError(
            f"no supervisor of {_describe(config_path)} has a run file in {runtime_dir()}, "
            f"and the configuration is invalid ({len(exc.problems)} problem(s)), so its "
            "control socket cannot be derived from it either; pass --control-socket PATH"
        ) from exc
    cfg = loaded.config
    if cfg.supervisor.control_socket:
        how = "supervisor.control_socket of the configuration"
    else:
        how = f"the default path for server.port {cfg.server.port}"
    path = cfg.supervisor.control_socket or default_socket_path(cfg.server.port)
    return Target(path, f"{how} (no run file in {runtime_dir()})", {"config_path": config_path})


def mismatch(target: Target, reply: JSONObject) -> str | None:
    """Why the supervisor that replied is not the one ``target`` means (None: it is)."""
    if not target.expect:
        return None
    who = reply.get("supervisor")
    if not isinstance(who, dict):
        return (
            f"the supervisor at {target.socket} did not say which one it is, so it cannot "
            f"be confirmed to be the one of {_describe(target.expect.get('config_path'))}"
        )
    for key, wanted in target.expect.items():
        if who.get(key) != wanted:
            return (
                f"the control socket {target.socket} (found by {target.found_by}) belongs to "
                f"the supervisor pid {who.get('pid')} of {_describe(who.get('config_path'))}, "
                f"not the one of {_describe(target.expect.get('config_path'))}"
            )
    return None


def _named_socket(inputs: ConfigInputs) -> str | None:
    """``supervisor.control_socket`` as the readable layers set it, or None."""
    try:
        section = peek_section(inputs, "supervisor.control_socket")
    except ConfigError:
        return None
    return section.supervisor.control_socket if section is not None else None
