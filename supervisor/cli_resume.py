"""`run --resume-last-good`: start from the last committed config when the sources are
invalid at boot (issue 9)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from supervisor.config import ConfigInputs, LoadedConfig
from supervisor.config.store import StateStore
from supervisor.reload.lifecycle import Resumed


def load_or_resume(
    inputs: ConfigInputs, state_dir: Path | None
) -> tuple[LoadedConfig, Resumed | None]:
    """`run --resume-last-good`: the sources, or else the last committed config with the
    current secrets (the secrets directory, env, --set; not the broken files), pinned
    until the sources are valid again; exit 1 when neither can be loaded."""
    from supervisor.config import ConfigError, load_config
    from supervisor.config.restore import Restore
    from supervisor.config.state_paths import default_state_dir

    try:
        return load_config(inputs), None
    except ConfigError as exc:
        problems = list(exc.problems)
    store = StateStore(state_dir or default_state_dir(dict(inputs.env)))
    newest = next(iter(store.backups().items), None)
    click.echo(f"configuration invalid: {len(problems)} problem(s)", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    if newest is None:
        click.echo(f"no backup to resume from in {store.directory}", err=True)
        sys.exit(1)
    label = f"backup v{newest.version}"
    env = {
        k: v
        for k, v in inputs.env.items()
        if k not in ("REDIS_GATEWAY_CONFIG", "REDIS_GATEWAY_CONFIGMAP_DIR")
    }
    pinned = dataclasses.replace(
        inputs,
        config_path=None,
        configmap_dir=None,
        env=env,
        restore=Restore(label=label, tree=newest.config, until_valid=True),
    )
    try:
        loaded = load_config(pinned)
    except ConfigError as again:
        click.echo(f"{label} cannot be resumed with the current secrets either:", err=True)
        for problem in again.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    click.echo(f"resuming from {label} (the last good config); drift: rejected", err=True)
    return loaded, Resumed(pinned, problems)
