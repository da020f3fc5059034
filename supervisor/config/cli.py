"""`redis-gateway config validate|show|schema` (placeholder until issue 2 lands)."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Attach the `config` command group to the root CLI."""

    @root.group("config")
    def config_group() -> None:
        """Validate, show and describe the configuration."""
