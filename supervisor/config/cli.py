"""`redis-gateway config validate|show|schema`, and the shared config options.

`config_options` adds the options that choose the configuration inputs (file,
profile, --set, ConfigMap and secrets directories) to any command; `run` uses it
too, so every command reads the configuration the same way. `inputs_from_options`
turns the parsed options into a `ConfigInputs`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypedDict, TypeVar, Unpack

import click

from gateway_worker.config import PROFILES
from supervisor.config.loader import ConfigError, ConfigInputs, LoadedConfig, load_config

#: A click command function (click's decorators type them with ``...``/Any).
F = TypeVar("F", bound=Callable[..., Any])


class ConfigOptions(TypedDict):
    """The keyword arguments ``config_options`` gives a command."""

    config: Path | None
    profile: str | None
    overrides: tuple[str, ...]
    configmap_dir: Path | None
    secrets_dir: Path | None


_PATH = click.Path(path_type=Path, dir_okay=True, file_okay=True)


def config_options(func: F) -> F:
    """Add --config/-c, --profile, --set, --configmap-dir, --secrets-dir to a command.

    The command receives them as keyword arguments ``config``, ``profile``,
    ``overrides``, ``configmap_dir`` and ``secrets_dir``; pass them all to
    `inputs_from_options`.
    """
    # Existence is checked by the loader, so that a missing file is reported like
    # every other configuration problem (key, source, rule), not as a click usage error.
    options = [
        click.option(
            "--config",
            "-c",
            "config",
            type=_PATH,
            envvar="REDIS_GATEWAY_CONFIG",
            default=None,
            help="Main config file (TOML, YAML or JSON). Env: REDIS_GATEWAY_CONFIG.",
        ),
        click.option(
            "--profile",
            type=click.Choice(PROFILES),
            envvar="REDIS_GATEWAY_PROFILE",
            default=None,
            help="Deployment profile (default dev). Env: REDIS_GATEWAY_PROFILE.",
        ),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one key, e.g. --set server.port=9000 (repeatable; highest "
            "precedence; the value is JSON if it parses, else a string).",
        ),
        click.option(
            "--configmap-dir",
            type=_PATH,
            envvar="REDIS_GATEWAY_CONFIGMAP_DIR",
            default=None,
            help="Kubernetes ConfigMap mount (one file per key). Env: REDIS_GATEWAY_CONFIGMAP_DIR.",
        ),
        click.option(
            "--secrets-dir",
            type=_PATH,
            envvar="REDIS_GATEWAY_SECRETS_DIR",
            default=None,
            help="Kubernetes Secret mount (one file per key). Env: REDIS_GATEWAY_SECRETS_DIR.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def inputs_from_options(
    config: Path | None = None,
    profile: str | None = None,
    overrides: tuple[str, ...] = (),
    configmap_dir: Path | None = None,
    secrets_dir: Path | None = None,
) -> ConfigInputs:
    """Build `ConfigInputs` from the keyword arguments `config_options` produced
    (a command passes ``**options: Unpack[ConfigOptions]`` straight through)."""
    return ConfigInputs(
        config_path=config,
        profile=profile,
        overrides=tuple(overrides),
        configmap_dir=configmap_dir,
        secrets_dir=secrets_dir,
        env=dict(os.environ),
    )


def load_or_exit(inputs: ConfigInputs) -> LoadedConfig:
    """Load and validate, or print every problem to stderr and exit 1; warnings go to stderr."""
    try:
        loaded = load_config(inputs)
    except ConfigError as exc:
        exit_invalid(exc)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


def exit_invalid(exc: ConfigError) -> NoReturn:
    """Print every problem to stderr and exit 1."""
    click.echo(f"configuration invalid: {len(exc.problems)} problem(s)", err=True)
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


def register(root: click.Group) -> None:
    """Attach the `config` command group to the root CLI."""

    @root.group("config")
    def config_group() -> None:
        """Validate, show and describe the configuration."""

    @config_group.command("validate")
    @config_options
    def validate(**options: Unpack[ConfigOptions]) -> None:
        """Load every layer and validate; exit 1 listing every problem."""
        loaded = load_or_exit(inputs_from_options(**options))
        click.echo(f"configuration valid: profile={loaded.config.profile} hash={loaded.hash}")

    @config_group.command("show")
    @config_options
    @click.option("--sources", is_flag=True, help="Show where each value came from.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["toml", "json"]),
        default="toml",
        show_default=True,
    )
    def show(sources: bool, fmt: str, **options: Unpack[ConfigOptions]) -> None:
        """Print the effective configuration, secrets redacted."""
        from supervisor.config.render import render_show

        loaded = load_or_exit(inputs_from_options(**options))
        click.echo(render_show(loaded, fmt=fmt, sources=sources), nl=False)

    @config_group.command("schema")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["json", "markdown"]),
        default="json",
        show_default=True,
    )
    def schema(fmt: str) -> None:
        """Print the JSON Schema of the configuration, or its Markdown reference."""
        if fmt == "json":
            from gateway_worker.config import Config

            click.echo(json.dumps(Config.model_json_schema(), indent=2, sort_keys=True))
        else:
            from supervisor.config.docs import render_markdown

            click.echo(render_markdown(), nl=False)
