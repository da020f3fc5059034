"""`redis-gateway config diff | backups list|show|restore | history` (issue 9).

``diff`` and ``backups restore`` ask the running supervisor over its control socket;
``backups list|show`` and ``history`` read the state directory (``--state-dir``, else the
one the config names, else the default), so they work with no supervisor running.

Exit codes: ``diff`` 0 in sync, 1 when running and sources differ (or the sources are
invalid), 2 on error (no supervisor to ask). ``restore`` 0 when the restored config
runs (or, with ``--dry-run``, when it is valid), 1 otherwise (a refused compare-and-set
included). ``backups``/``history`` 0, 1 when there is nothing to read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Unpack

import click
import tomli_w

from gateway_worker.control_socket import JSONObject
from supervisor.cli_run import refuse_run_options, target_options
from supervisor.config.cli import ConfigOptions, config_options, inputs_from_options
from supervisor.config.render import drop_none
from supervisor.config.store import StateStore


def _state_store(state_dir: Path | None, options: ConfigOptions) -> StateStore:
    """--state-dir, else the config's supervisor.state_dir, else the default."""
    from supervisor.config import ConfigError, load_config
    from supervisor.config.state_paths import default_state_dir, state_dir_of

    if state_dir is not None:
        return StateStore(state_dir)
    inputs = inputs_from_options(**options)
    try:
        return StateStore(state_dir_of(load_config(inputs).config, dict(inputs.env)))
    except ConfigError:  # an invalid config must not stop anyone from reading backups
        fallback = default_state_dir(dict(inputs.env))
        click.echo(
            f"warning: the configuration is invalid; reading the default state "
            f"directory {fallback} (pass --state-dir)",
            err=True,
        )
        return StateStore(fallback)


def _ask(
    control_socket: str | None,
    config: Path | None,
    payload: JSONObject,
    timeout: float,
    exit_code: int,
) -> JSONObject:
    """One request to the supervisor of ``config`` (or at ``control_socket``); when it
    cannot be found, reached or confirmed, exit ``exit_code``."""
    from supervisor.cli_run import ask, target

    return ask(target(control_socket, config), payload, timeout, "error", exit_code)


def _when(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _value(side: object) -> str:
    value = side.get("value") if isinstance(side, dict) else None
    return "(unset)" if value is None else json.dumps(value)


def _source(side: object) -> str:
    source = side.get("source") if isinstance(side, dict) else None
    return str(source or "default")


def format_diff(reply: JSONObject) -> str:
    """`config diff`, for people."""
    lines = [f"drift: {reply.get('state')}"]
    if reply.get("pinned"):
        lines.append(f"running {reply['pinned']}, restored over the sources")
    for reason in reply.get("reasons") or []:
        lines.append(f"  {reason}")
    for problem in reply.get("problems") or []:
        lines.append(f"  {problem}")
    for row in reply.get("rows") or []:
        note = "  (a secret changed)" if row.get("secret_changed") else ""
        lines.append(f"{row['key']}:{note}")
        lines.append(f"  running: {_value(row['running'])}  # {_source(row['running'])}")
        lines.append(f"  sources: {_value(row['sources'])}  # {_source(row['sources'])}")
    return "\n".join(lines)


@click.command("diff")
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the supervisor.",
)
def diff(
    config: Path | None,
    control_socket: str | None,
    as_json: bool,
    timeout: float,
    **run_only: object,
) -> None:
    """Running config vs its sources, key by key, with where each side came from.

    The supervisor is the one started with --config, or the one at --control-socket."""
    refuse_run_options("config diff", run_only)
    reply = _ask(control_socket, config, {"cmd": "diff"}, timeout, exit_code=2)
    if not reply.get("ok"):
        click.echo(f"error: {reply.get('error', reply)}", err=True)
        sys.exit(2)
    click.echo(json.dumps(reply, indent=2) if as_json else format_diff(reply))
    sys.exit(0 if reply.get("state") == "in_sync" else 1)


@click.group("backups")
def backups() -> None:
    """The committed configs kept in the state directory (no secret values)."""


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State directory (default: the config's supervisor.state_dir).",
)


@backups.command("list")
@config_options
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backups_list(state_dir: Path | None, as_json: bool, **options: Unpack[ConfigOptions]) -> None:
    """One line per backup, newest first."""
    found = _state_store(state_dir, options).backups()
    for problem in found.problems:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(json.dumps([b.summary() for b in found.items], indent=2))
        return
    if not found.items:
        click.echo("no backups", err=True)
        sys.exit(1)
    for b in found.items:
        changed = ", ".join(b.changed) if b.changed else "-"
        click.echo(f"v{b.version:<5} {_when(b.time)}  {b.trigger:<24} {b.hash[:16]}  {changed}")


@backups.command("show")
@click.argument("version", type=int)
@config_options
@state_dir_option
@click.option(
    "--format", "fmt", type=click.Choice(["toml", "json"]), default="toml", show_default=True
)
def backups_show(
    version: int, state_dir: Path | None, fmt: str, **options: Unpack[ConfigOptions]
) -> None:
    """The backup's config, usable as a main config file (secrets withheld)."""
    backup = _state_store(state_dir, options).backups().get(version)
    if backup is None:
        click.echo(f"no backup of version {version}", err=True)
        sys.exit(1)
    if backup.secrets:
        click.echo(
            "withheld (they stay in your secret sources): " + ", ".join(backup.secrets),
            err=True,
        )
    if fmt == "json":
        click.echo(
            json.dumps(
                {**backup.summary(), "config": backup.config, "withheld": backup.secrets},
                indent=2,
            )
        )
        return
    click.echo(
        f"# backup v{backup.version}, {_when(backup.time)}, trigger "
        f"{backup.trigger}, hash {backup.hash}"
    )
    click.echo(tomli_w.dumps(drop_none(backup.config)), nl=False)


@backups.command("restore")
@click.argument("version", type=int)
@target_options
@click.option("--dry-run", is_flag=True, help="Print what would change; apply nothing.")
@click.option(
    "--expect-version",
    type=int,
    default=None,
    help="Refuse unless this is the running version (compare-and-set).",
)
@click.option("--timeout", type=float, default=120.0, show_default=True)
def backups_restore(
    version: int,
    *,
    config: Path | None,
    control_socket: str | None,
    dry_run: bool,
    expect_version: int | None,
    timeout: float,
    **run_only: object,
) -> None:
    """Restore a backup through the reload pipeline (validate, new generation, ...)."""
    refuse_run_options("config backups restore", run_only)
    payload: JSONObject = {
        "cmd": "restore",
        "version": version,
        "dry_run": dry_run,
        "expect_version": expect_version,
    }
    reply = _ask(control_socket, config, payload, timeout, exit_code=1)
    sys.exit(_print_restore(reply, version, dry_run))


@click.command("history")
@config_options
@state_dir_option
@click.option(
    "--limit", type=int, default=20, show_default=True, help="How many of the latest entries."
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def history(state_dir: Path | None, limit: int, fmt: str, **options: Unpack[ConfigOptions]) -> None:
    """Every reload attempt: when, what asked, the outcome, what changed (redacted)."""
    entries, problems = _state_store(state_dir, options).history(limit=limit)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if fmt == "json":
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("no history", err=True)
        sys.exit(1)
    for e in entries:
        changed = ", ".join(e.get("changed") or []) or "-"
        line = (
            f"{_when(e.get('time'))}  v{e.get('version')}  {e.get('result'):<16} "
            f"{e.get('trigger_kind', e.get('trigger'))}  {changed}"
        )
        click.echo(line)
        for error in (e.get("errors") or []) + (e.get("reasons") or []):
            click.echo(f"    {error}")


def _print_restore(reply: JSONObject, version: int, dry_run: bool) -> int:
    if dry_run or "rows" in reply:
        for problem in reply.get("problems") or []:
            click.echo(f"  {problem}", err=True)
        if reply.get("valid") is False:
            click.echo(f"backup v{version} is not valid with the current sources", err=True)
            return 1
        click.echo(format_diff({**reply, "state": "dry run: restoring would change"}))
        return 0
    outcome = reply.get("reload")
    if not isinstance(outcome, dict):
        click.echo(f"restore refused: {reply.get('error', reply)}", err=True)
        return 1
    from supervisor.reload.outcome import ReloadOutcome

    fields = ("result", "trigger", "version", "hash", "error", "errors", "changed")
    click.echo(ReloadOutcome(**{k: outcome[k] for k in fields}).summary())
    if reply.get("ok"):
        click.echo(
            f"restored backup v{version}: secrets come from the current sources. The files "
            "still say otherwise: the restore holds until they match it (write it with "
            f"`redis-gateway config backups show {version} --format toml`), or until "
            "`redis-gateway reload --discard-restore`."
        )
        return 0
    for problem in outcome.get("errors") or []:
        click.echo(f"  {problem}", err=True)
    return 1


def register(root: click.Group) -> None:
    """Add diff, backups and history to the `config` group."""
    group = root.commands["config"]
    assert isinstance(group, click.Group)
    for command in (diff, backups, history):
        group.add_command(command)
