"""PLACEHOLDER loader: defaults + one TOML file + --set. Being replaced by the full
layered loader (issue 2); the public names and signatures below stay."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway_worker.config import Config, dump_with_secrets
from gateway_worker.errors import GatewayError


class ConfigError(GatewayError):
    """Invalid or unreadable configuration; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ConfigInputs:
    """Everything that determines the effective configuration."""

    config_path: Path | None = None
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    configmap_dir: Path | None = None
    secrets_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where each value came from."""

    config: Config
    provenance: dict[str, str]
    hash: str
    watched_paths: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


def load_config(inputs: ConfigInputs) -> LoadedConfig:
    data: dict[str, Any] = {}
    paths: list[Path] = []
    if inputs.config_path is not None:
        try:
            data = tomllib.loads(inputs.config_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([f"{inputs.config_path}: {exc}"]) from exc
        paths.append(inputs.config_path)
    for item in inputs.overrides:
        key, _, value = item.partition("=")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = json.loads(value)
        except ValueError:
            node[parts[-1]] = value
    if inputs.profile:
        data["profile"] = inputs.profile
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                           for e in exc.errors()]) from exc
    digest = hashlib.sha256(
        json.dumps(dump_with_secrets(config), sort_keys=True).encode()
    ).hexdigest()[:16]
    return LoadedConfig(config, {}, digest, tuple(paths))


def fingerprint_inputs(inputs: ConfigInputs) -> str:
    """PLACEHOLDER: hash of the main file's bytes and the overrides."""
    h = hashlib.sha256(repr(inputs.overrides).encode())
    if inputs.config_path is not None:
        try:
            h.update(inputs.config_path.read_bytes())
        except OSError as exc:
            h.update(repr(exc).encode())
    return h.hexdigest()[:16]
