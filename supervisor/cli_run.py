"""`redis-gateway run|reload|status`.

Exit codes: ``run`` 0 after a requested stop, 1 for an invalid config, a port that
cannot be bound, or a first generation that cannot boot. ``reload`` 0 when the reload
committed (or found nothing to change), 1 otherwise (incl. an unreachable supervisor).
``status`` 0, or 1 when the supervisor cannot be reached.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import click

from gateway_worker.control_socket import JSONObject
from supervisor.config.cli import ConfigOptions, config_options, inputs_from_options

if TYPE_CHECKING:
    from supervisor.config import ConfigInputs
    from supervisor.kubernetes.wiring import ApiSource


def _ask(
    path: str, cmd: str, timeout: float, failure: str, **options: object
) -> tuple[JSONObject, JSONObject]:
    """Send ``cmd`` (with ``options``) over the control socket; return the reply and its
    ``cmd`` section. An unreachable socket or a reply without that section: print
    ``failure: why``, exit 1."""
    from gateway_worker.control_socket import ControlError, request

    try:
        reply = request(path, {"cmd": cmd, **options}, timeout)
    except ControlError as exc:
        click.echo(f"{failure}: {exc}", err=True)
        sys.exit(1)
    section = reply.get(cmd)
    if not isinstance(section, dict):
        click.echo(f"{failure}: {reply.get('error', reply)}", err=True)
        sys.exit(1)
    return reply, section


def _control_path(control_socket: str | None, options: ConfigOptions) -> str:
    """--control-socket, else the path the config (same options as `run`) implies."""
    if control_socket:
        return control_socket
    from supervisor.config import ConfigError, load_config, peek_section
    from supervisor.triggers.control import default_socket_path

    inputs = inputs_from_options(**options)
    try:
        loaded = load_config(inputs)
    except ConfigError as exc:
        # The file may have just been broken on purpose (the reload will report it),
        # or the rest needs what only the supervisor reads (the API source's Secret):
        # the socket named by the config, else the one supervisor socket in the default
        # directory, is unambiguous.
        try:
            named = peek_section(inputs, "supervisor.control_socket")
        except ConfigError:
            named = None
        if named is not None and named.supervisor.control_socket:
            return named.supervisor.control_socket
        found = sorted(Path(default_socket_path(0)).parent.glob("redis-gateway-*.sock"))
        if len(found) == 1:
            return str(found[0])
        raise click.ClickException(
            "cannot locate the control socket: the configuration is invalid "
            f"({len(exc.problems)} problem(s)) and {len(found)} sockets are in "
            f"{Path(default_socket_path(0)).parent}; pass --control-socket PATH"
        ) from exc
    cfg = loaded.config
    return cfg.supervisor.control_socket or default_socket_path(cfg.server.port)


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
    from supervisor.config import ConfigError
    from supervisor.config.cli import exit_invalid
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
@config_options
@click.option(
    "--control-socket",
    default=None,
    help="Control socket path (overrides the one derived from the config options).",
)
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
    control_socket: str | None,
    timeout: float,
    as_json: bool,
    discard_restore: bool,
    **options: Unpack[ConfigOptions],
) -> None:
    """Reload the running supervisor's configuration and wait for the outcome."""
    from supervisor.reload.outcome import ReloadOutcome

    reply, data = _ask(
        _control_path(control_socket, options),
        "reload",
        timeout,
        "reload failed",
        discard_restore=discard_restore,
    )
    if as_json:
        click.echo(json.dumps(data, indent=2))
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
    sys.exit(0 if reply.get("ok") else 1)


@click.command("status")
@config_options
@click.option("--control-socket", default=None, help="Control socket path.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--timeout", type=float, default=5.0, show_default=True)
def status(
    control_socket: str | None, as_json: bool, timeout: float, **options: Unpack[ConfigOptions]
) -> None:
    """Show generation, workers, config version and the last reload."""
    _, st = _ask(_control_path(control_socket, options), "status", timeout, "status unavailable")
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
        f"supervisor pid {st['pid']}, up {st['uptime_seconds']}s, listening on "
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
    if st.get("restored"):
        lines.append(f"restored: {st['restored']} pinned over the sources")
    state = st.get("state")
    if isinstance(state, dict):
        where = state.get("dir") or "none (no backups, history or persistent versions)"
        lines.append(
            f"state dir: {where}"
            + (f" — last write failed: {state['last_error']}" if state.get("last_error") else "")
        )
    drift = st.get("drift")
    if drift:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drift["since"]))
        lines.append(f"config drift: {drift['state']} since {since}")
        lines.extend(f"  {reason}" for reason in drift["reasons"])
        held = (last or {}).get("result") == "held"
        if drift["state"] == "pending" and drift["reasons"] and held and not st.get("restored"):
            lines.append("  (apply with `redis-gateway reload` or SIGHUP)")
    return "\n".join(lines)
