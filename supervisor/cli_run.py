"""`redis-gateway run|reload|status` (placeholder until issue 3 lands)."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Attach run/reload/status to the root CLI."""
