"""`redis-gateway run|reload|status`.

Exit codes: ``run`` 0 after a requested stop, 1 for an invalid config, a port that
cannot be bound, or a first generation that cannot boot. ``reload`` 0 when the reload
committed (or found nothing to change), 1 otherwise (incl. a supervisor that cannot be
found or reached, or is not the one meant: ``supervisor.locate``). ``status`` 0, or 1
like ``reload``. Both exit 2 for `run`'s config options (--profile, --set, ...), which
cannot change a running supervisor's inputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import click

from gateway_worker.control_socket import JSONObject
from supervisor.config.cli import ConfigOptions, F, config_options, inputs_from_options

if TYPE_CHECKING:
    from supervisor.locate import Target


def _ask(target: Target, cmd: str, timeout: float, failure: str) -> tuple[JSONObject, JSONObject]:
    """Send ``cmd`` to the supervisor ``target`` means; return the reply and its ``cmd``
    section. Unreachable, another supervisor, or no such section: print
    ``failure: why``, exit 1."""
    from gateway_worker.control_socket import ControlError, request
    from supervisor.locate import mismatch

    payload: JSONObject = {"cmd": cmd}
    if target.expect:
        payload["expect"] = target.expect
    try:
        reply = request(target.socket, payload, timeout)
    except ControlError as exc:
        click.echo(f"{failure}: {exc} (socket found by {target.found_by})", err=True)
        sys.exit(1)
    section = reply.get(cmd)
    # The supervisor's own refusal first (it says nothing was done); then our check.
    problem = mismatch(target, reply) if isinstance(section, dict) else reply.get("error", reply)
    if problem is not None:
        click.echo(f"{failure}: {problem}", err=True)
        sys.exit(1)
    assert isinstance(section, dict)
    return reply, section


def _target(control_socket: str | None, config: Path | None) -> Target:
    """The supervisor meant (``supervisor.locate``), or print why none and exit 1."""
    from supervisor.locate import LocateError, locate

    try:
        return locate(control_socket, config, os.environ)
    except LocateError as exc:
        click.echo(f"cannot find the supervisor: {exc}", err=True)
        sys.exit(1)


#: Options of `run` that reload/status accept only to refuse them (never ignore).
_RUN_ONLY = {
    "profile": "--profile",
    "overrides": "--set",
    "configmap_dir": "--configmap-dir",
    "secrets_dir": "--secrets-dir",
}


def target_options(func: F) -> F:
    """--config/-c (which supervisor: the one started with that file), --control-socket,
    and `run`'s other config options, hidden, to refuse them with a reason."""
    options = [
        click.option(
            "--config",
            "-c",
            "config",
            type=click.Path(path_type=Path),
            envvar="REDIS_GATEWAY_CONFIG",
            default=None,
            help="Main config file of the supervisor meant (as given to `run`). "
            "Env: REDIS_GATEWAY_CONFIG.",
        ),
        click.option(
            "--control-socket",
            default=None,
            help="Control socket path (instead of finding it from --config).",
        ),
        click.option("--profile", hidden=True, default=None),
        click.option("--set", "overrides", hidden=True, multiple=True),
        click.option("--configmap-dir", hidden=True, default=None),
        click.option("--secrets-dir", hidden=True, default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _refuse_run_options(command: str, given: Mapping[str, object]) -> None:
    """A running supervisor's inputs are the ones it was started with: say so."""
    used = [flag for name, flag in _RUN_ONLY.items() if given.get(name)]
    if not used:
        return
    if command == "reload":
        why = (
            "cannot change a running supervisor's inputs: it re-reads the files, "
            "environment and options it was started with. Put the change in its config "
            "file, or restart it with the option"
        )
    else:
        why = "is not used: status reports the running supervisor as it was started"
    raise click.UsageError(f"{', '.join(used)} {why}.")


def _identity_line(reply: JSONObject) -> str:
    who = reply.get("supervisor") or {}
    return f"supervisor pid {who.get('pid')}, {who.get('config_path') or 'no config file'}"


@click.command("run")
@config_options
@click.option(
    "--pidfile",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the supervisor's pid here (removed on exit).",
)
def run(pidfile: Path | None, **options: Unpack[ConfigOptions]) -> None:
    """Run the supervisor and its workers (foreground).

    \b
    Signals: HUP reload; TERM/INT graceful stop (INT twice: fast);
    QUIT fast stop; TTIN/TTOU one worker more/less; USR1 reopen logs.
    Exit 1 if the config is invalid or the first workers cannot boot.
    See docs/operations.md.
    """
    from supervisor.config.cli import load_or_exit
    from supervisor.runtime import run_supervisor

    inputs = inputs_from_options(**options)
    loaded = load_or_exit(inputs)
    sys.exit(run_supervisor(inputs, loaded, pidfile))


@click.command("reload")
@target_options
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for the outcome.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def reload(
    config: Path | None,
    control_socket: str | None,
    timeout: float,
    as_json: bool,
    **run_only: object,
) -> None:
    """Reload the running supervisor's configuration and wait for the outcome.

    The supervisor is the one started with --config (found even while that file is
    invalid), or the one at --control-socket. See docs/operations.md.
    """
    from supervisor.reload.outcome import ReloadOutcome

    _refuse_run_options("reload", run_only)
    target = _target(control_socket, config)
    reply, data = _ask(target, "reload", timeout, "reload failed")
    if as_json:
        click.echo(json.dumps({**data, "supervisor": reply.get("supervisor")}, indent=2))
    else:
        outcome = ReloadOutcome(
            **{
                k: data[k]
                for k in ("result", "trigger", "version", "hash", "error", "errors", "changed")
            },
            reasons=data.get("reasons", []),
        )
        click.echo(outcome.summary())
        for problem in outcome.errors:
            click.echo(f"  {problem}")
        click.echo(f"  ({_identity_line(reply)})")
    sys.exit(0 if reply.get("ok") else 1)


@click.command("status")
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--timeout", type=float, default=5.0, show_default=True)
def status(
    config: Path | None,
    control_socket: str | None,
    as_json: bool,
    timeout: float,
    **run_only: object,
) -> None:
    """Show generation, workers, config version and the last reload."""
    _refuse_run_options("status", run_only)
    _, st = _ask(_target(control_socket, config), "status", timeout, "status unavailable")
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(format_status(st))


def register(root: click.Group) -> None:
    """Attach run/reload/status to the root CLI."""
    for command in (run, reload, status):
        root.add_command(command)


def format_status(st: JSONObject) -> str:
    """Human view of a status reply."""
    lines = [
        f"supervisor pid {st['pid']} ({st.get('config_path') or 'no config file'}), "
        f"up {st['uptime_seconds']}s, listening on "
        f"{', '.join(st['listen'])}",
        f"config version {st['version']} (hash {st['hash']}), profile {st['profile']}",
        f"generation {st['generation']}, {st['desired_workers']} worker(s) desired"
        + (f", {st['standby_workers']} standby" if st.get("standby_workers") else "")
        + (", reload in progress" if st.get("reload_in_progress") else ""),
        "workers:",
        f"  {'PID':>7}  {'GEN':>3}  {'STATE':<9} {'AGE':>8}  RESTARTS",
    ]
    for w in st["workers"]:
        lines.append(
            f"  {w['pid']:>7}  {w['generation']:>3}  {w['state']:<9} "
            f"{w['age_seconds']:>7}s  {w['restarts']}"
        )
    last = st.get("last_reload")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["finished_at"]))
        detail = f" — {last['error']}" if last.get("error") else ""
        lines.append(f"last reload: {last['result']} at {when} (trigger {last['trigger']}){detail}")
    else:
        lines.append("last reload: none")
    drift = st.get("drift")
    if drift:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drift["since"]))
        lines.append(f"config drift: {drift['state']} since {since}")
        lines.extend(f"  {reason}" for reason in drift["reasons"])
        if drift["state"] == "pending" and drift["reasons"]:
            lines.append("  (apply with `redis-gateway reload` or SIGHUP)")
    return "\n".join(lines)
