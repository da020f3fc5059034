"""Markdown reference of every configuration key, generated from the schema."""

from __future__ import annotations


def render_markdown() -> str:
    """docs/configuration.md content."""
    return "# Configuration reference\n"
