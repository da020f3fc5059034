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


def ask(
    target: Target, payload: JSONObject, timeout: float, failure: str, exit_code: int = 1
) -> JSONObject:
    """Send ``payload`` to the supervisor ``target`` means and return its reply.
    Unreachable, or another supervisor: print ``failure: why`` and exit ``exit_code``
    (the supervisor's own refusal, which says nothing was done, comes first)."""
    from gateway_worker.control_socket import ControlError, request
    from supervisor.locate import mismatch

    if target.expect:
        payload = {**payload, "expect": target.expect}
    try:
        reply = request(target.socket, payload, timeout)
    except ControlError as exc:
        click.echo(f"{failure}: {exc} (socket found by {target.found_by})", err=True)
        sys.exit(exit_code)
    refused = reply.get("ok") is False and "nothing was done" in str(reply.get("error"))
    problem = reply.get("error") if refused else mismatch(target, reply)
    if problem is not None:
        click.echo(f"{failure}: {problem}", err=True)
        sys.exit(exit_code)
    return reply


if TYPE_CHECKING:
    from supervisor.config import ConfigInputs
    from supervisor.kubernetes.wiring import ApiSource


def _ask(
    target: Target, cmd: str, timeout: float, failure: str, **options: object
) -> tuple[JSONObject, JSONObject]:
    """``ask`` for ``cmd`` (with ``options``); the reply and its ``cmd`` section (exit 1
    without one)."""
    reply = ask(target, {"cmd": cmd, **options}, timeout, failure)
    section = reply.get(cmd)
    if not isinstance(section, dict):
        click.echo(f"{failure}: {reply.get('error', reply)}", err=True)
        sys.exit(1)
    return reply, section


def target(control_socket: str | None, config: Path | None) -> Target:
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


def refuse_run_options(command: str, given: Mapping[str, object]) -> None:
    """A running supervisor's inputs are the ones it was started with: say so."""
    used = [flag for name, flag in _RUN_ONLY.items() if given.get(name)]
    if not used:
        return
    if command in ("reload", "config backups restore", "config diff"):
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
@click.option(
    "--resume-last-good",
    is_flag=True,
    help="If the sources are invalid at start, start from the last committed config in "
    "the state directory (reported as drift `rejected`) instead of exiting 1.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="--resume-last-good: where the backups are (default: the default state dir).",
)
def run(
    pidfile: Path | None,
    resume_last_good: bool,
    state_dir: Path | None,
    **options: Unpack[ConfigOptions],
) -> None:
    """Run the supervisor and its workers (foreground).

    \b
    Signals: HUP reload; TERM/INT graceful stop (INT twice: fast);
    QUIT fast stop; TTIN/TTOU one worker more/less; USR1 reopen logs.
    Exit 1 if the config is invalid, the first workers cannot boot, or (with
    kubernetes.enabled) the Kubernetes API cannot be listed in time.
    See docs/operations.md and docs/kubernetes.md.
    """
    from supervisor.config.cli import load_or_exit
    from supervisor.runtime import run_supervisor

    inputs = inputs_from_options(**options)
    api = _start_api_source(inputs)
    try:
        inputs = api.inputs if api is not None else inputs
        if not resume_last_good:
            sys.exit(run_supervisor(inputs, load_or_exit(inputs), pidfile))
        from supervisor.cli_resume import load_or_resume

        loaded, resumed = load_or_resume(inputs, state_dir)
        sys.exit(run_supervisor(inputs, loaded, pidfile, resumed))
    finally:
        if api is not None:
            api.close()


def _start_api_source(inputs: ConfigInputs) -> ApiSource | None:
    """The Kubernetes API source, started and synced when ``kubernetes.enabled``; exit 1
    when its section is invalid or the API cannot be listed in time."""
    from supervisor.config import ConfigError, peek_section
    from supervisor.config.cli import exit_invalid

    try:
        peeked = peek_section(inputs, "kubernetes")
    except ConfigError as exc:
        exit_invalid(exc)
    if peeked is None or not peeked.kubernetes.enabled:
        # Off (start_if_enabled would say None too): the source's modules (its HTTP
        # client and objects, ~1 MB of the supervisor's RSS) are never imported.
        return None
    from supervisor.kubernetes import KubernetesError
    from supervisor.kubernetes.wiring import log_early, start_if_enabled

    try:
        return start_if_enabled(inputs, prepare=log_early)
    except ConfigError as exc:
        exit_invalid(exc)
    except KubernetesError as exc:
        click.echo(f"redis-gateway: cannot start: {exc}", err=True)
        sys.exit(1)


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
@click.option(
    "--discard-restore",
    is_flag=True,
    help="Drop a restored backup pinned over the sources, and reload from the sources.",
)
def reload(
    config: Path | None,
    control_socket: str | None,
    timeout: float,
    as_json: bool,
    discard_restore: bool,
    **run_only: object,
) -> None:
    """Reload the running supervisor's configuration and wait for the outcome.

    The supervisor is the one started with --config (found even while that file is
    invalid), or the one at --control-socket. See docs/operations.md.
    """
    from supervisor.reload.outcome import ReloadOutcome

    refuse_run_options("reload", run_only)
    reply, data = _ask(
        target(control_socket, config),
        "reload",
        timeout,
        "reload failed",
        discard_restore=discard_restore,
    )
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
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for the supervisor's answer (exit 1 after that).",
)
def status(
    config: Path | None,
    control_socket: str | None,
    as_json: bool,
    timeout: float,
    **run_only: object,
) -> None:
    """Show generation, workers, config version and the last reload."""
    refuse_run_options("status", run_only)
    _, st = _ask(target(control_socket, config), "status", timeout, "status unavailable")
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(format_status(st))


def register(root: click.Group) -> None:
    """Attach run/reload/status to the root CLI."""
    for command in (run, reload, status):
        root.add_command(command)


def _embedded_line(embedded: JSONObject) -> str:
    state = embedded["state"]
    where = f"pid {embedded['pid']}, " if embedded.get("pid") else ""
    line = (
        f"embedded redis: {state} ({where}{embedded['url']}), "
        f"{embedded['restarts']} restart(s), data not kept"
    )
    if embedded.get("last_exit"):
        line += f"; last exit: {embedded['last_exit']}"
    return line


def format_status(st: JSONObject) -> str:
    """Human view of a status reply."""
    lines = [
        f"supervisor pid {st['pid']} ({st.get('config_path') or 'no config file'}), "
        f"up {st['uptime_seconds']}s, listening on "
        f"{', '.join(st['listen'])}",
        f"config version {st['version']} (hash {st['hash']}), profile {st['profile']}",
        f"generation {st['generation']}, {st['desired_workers']} worker(s) desired"
        + (", reload in progress" if st.get("reload_in_progress") else ""),
        "workers:",
        f"  {'PID':>7}  {'GEN':>3}  {'STATE':<9} {'AGE':>8}  RESTARTS",
    ]
    for w in st["workers"]:
        lines.append(
            f"  {w['pid']:>7}  {w['generation']:>3}  {w['state']:<9} "
            f"{w['age_seconds']:>7}s  {w['restarts']}"
        )
    if st.get("standby_workers"):
        lines.append(
            f"standby: {st['standby_workers']} spare worker(s), started and idle, serving "
            "nothing: the next reload or crash replacement starts from one"
        )
    embedded = st.get("embedded_redis")
    if isinstance(embedded, dict):
        lines.append(_embedded_line(embedded))
    last = st.get("last_reload")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["finished_at"]))
        detail = f" — {last['error']}" if last.get("error") else ""
        lines.append(f"last reload: {last['result']} at {when} (trigger {last['trigger']}){detail}")
    else:
        lines.append("last reload: none")
    if st.get("restored"):
        lines.append(f"restored: {st['restored']} pinned over the sources")
    state = st.get("state")
    if isinstance(state, dict):
        where = state.get("dir") or "none (no backups, history or persistent versions)"
        failed = state.get("last_error")
        lines.append(f"state dir: {where}" + (f" — last write failed: {failed}" if failed else ""))
    drift = st.get("drift")
    if drift:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drift["since"]))
        lines.append(f"config drift: {drift['state']} since {since}")
        lines.extend(f"  {reason}" for reason in drift["reasons"])
        held = (last or {}).get("result") == "held"
        if drift["state"] == "pending" and drift["reasons"] and held and not st.get("restored"):
            lines.append("  (apply with `redis-gateway reload` or SIGHUP)")
    return "\n".join(lines)
