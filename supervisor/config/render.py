"""Text renderings of a loaded configuration for `config show` (secrets redacted).

Redacted: every SecretStr field, every value that came from the secrets directory
or a `*_file` indirection (whatever its type), and the password inside a URL.
"""

from __future__ import annotations

import json

import tomli_w

from gateway_worker.config import dump_redacted
from supervisor.config.errors import SECRET_MASK, redact_url
from supervisor.config.formats import Data
from supervisor.config.layers import flatten
from supervisor.config.loader import LoadedConfig


def _from_secret_source(source: str) -> bool:
    return source.startswith(("secret file ", "secrets "))


def redacted_tree(loaded: LoadedConfig) -> dict[str, Data]:
    """The effective config as plain data, with every secret replaced by the mask."""
    tree = dump_redacted(loaded.config)
    for path, value in list(flatten(tree)):
        source = loaded.provenance.get(".".join(path), "default")
        node = tree
        for part in path[:-1]:
            node = node[part]
        if _from_secret_source(source) and value is not None:
            node[path[-1]] = SECRET_MASK
        elif isinstance(value, str):
            node[path[-1]] = redact_url(value)
    return tree


def drop_none(value: Data) -> Data:
    # TOML has no null: an unset key is simply absent (also inside list items).
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def render_show(loaded: LoadedConfig, *, fmt: str, sources: bool) -> str:
    """The effective configuration as TOML or JSON; `sources` adds provenance."""
    tree = redacted_tree(loaded)
    if fmt == "json":
        if sources:
            flat = {
                ".".join(p): {"value": v, "source": loaded.provenance.get(".".join(p))}
                for p, v in flatten(tree)
            }
            return json.dumps(flat, indent=2) + "\n"
        return json.dumps(tree, indent=2) + "\n"
    if not sources:
        return tomli_w.dumps(drop_none(tree))
    lines = [f"# profile {loaded.config.profile}, hash {loaded.hash}"]
    for path, value in flatten(tree):
        key = ".".join(path)
        shown = "(unset)" if value is None else json.dumps(value)
        lines.append(f"{key} = {shown}  # {loaded.provenance.get(key, 'default')}")
    return "\n".join(lines) + "\n"
