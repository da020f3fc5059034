"""The `redis-gateway` command line (click).

Sub-commands live beside their concern: `config ...` in `supervisor.config.cli`,
`run`, `reload`, `status` in `supervisor.cli_run`.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="redis-gateway")
def main() -> None:
    """HTTP gateway to Redis with zero-downtime configuration reload."""


def _register() -> None:
    from supervisor.cli_lifecycle import register as register_lifecycle
    from supervisor.cli_run import register as register_run
    from supervisor.config.cli import register as register_config

    register_config(main)
    register_lifecycle(main)
    register_run(main)


_register()
