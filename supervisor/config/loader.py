"""Load every layer, merge, validate, and say where each value came from.

Layers, lowest precedence first (one source object each, see sources.py):
defaults < main file < profile overlay < ConfigMap dir < secrets dir < env < --set.
`*_file` keys are resolved inside the layer that sets them (merge.py).

Nothing here logs or prints: the caller decides (the CLI writes to stderr, the
arbiter logs events), so `config show` output stays clean and no secret can leak
through a log line written here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from gateway_worker.config import PROFILES, Config, config_hash, dump_redacted
from supervisor.config.errors import ConfigError, Problem, render_value
from supervisor.config.layers import Layer, Origin, flatten
from supervisor.config.merge import Merged, merge, resolve_file_refs
from supervisor.config.profiles import PROFILE_DEFAULTS, check_profile
from supervisor.config.restore import Restore, apply_restore
from supervisor.config.sources import (
    DOCUMENT_SUFFIXES,
    ConfigMapSource,
    EnvSource,
    FileSource,
    OverridesSource,
    SecretsDirSource,
)
from supervisor.config.state_paths import read_fingerprint_key, state_dir_of
from supervisor.config.validation import (
    profile_problems_despite,
    set_by_directories,
    source_of,
    unresolvable_hosts,
    validation_problems,
)

__all__ = [
    "ConfigError",
    "ConfigInputs",
    "LoadedConfig",
    "fingerprint_inputs",
    "load_config",
    "overlay_candidates",
    "peek_section",
]

DEFAULT_PROFILE = "dev"


@dataclass(frozen=True)
class ConfigInputs:
    """Everything that determines the effective configuration.

    Unset paths and profile fall back to the meta environment variables
    REDIS_GATEWAY_CONFIG / _PROFILE / _CONFIGMAP_DIR / _SECRETS_DIR in `env`.
    """

    config_path: Path | None = None
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    configmap_dir: Path | None = None
    secrets_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: The main document's content, planned as if it replaced the main file
    #: (``POST /admin/config/plan``); the main file itself is not read.
    main_text: str | None = None
    #: Its format ("toml", "yaml", "json"); None: the main file's suffix says.
    main_format: str | None = None
    #: A backup's non-secret config pinned over the sources (``config backups restore``).
    restore: Restore | None = None

    @property
    def main_path(self) -> Path | None:
        """The main config file: ``config_path``, else $REDIS_GATEWAY_CONFIG."""
        return _path(self.config_path, self.env, "REDIS_GATEWAY_CONFIG")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where each value came from."""

    config: Config
    provenance: dict[str, str]
    hash: str
    watched_paths: tuple[Path, ...]
    warnings: tuple[str, ...] = ()
    #: ``fingerprint_inputs`` of exactly the bytes this config was loaded from, so a
    #: reload can tell whether it read what the watcher saw settle.
    inputs_fingerprint: str = ""


@dataclass
class _Collected:
    layers: list[Layer]
    profile: str
    profile_origin: Origin
    problems: list[Problem]


def _path(value: Path | None, env: Mapping[str, str], var: str) -> Path | None:
    if value is not None:
        return Path(value)
    raw = env.get(var)
    return Path(raw) if raw else None


def _choose_profile(
    inputs: ConfigInputs, main: Layer | None, problems: list[Problem]
) -> tuple[str, Origin]:
    env_value = inputs.env.get("REDIS_GATEWAY_PROFILE")
    if inputs.profile:
        source = "env REDIS_GATEWAY_PROFILE" if env_value == inputs.profile else "--profile"
        chosen, origin = inputs.profile, Origin(source)
    elif env_value:
        chosen, origin = env_value, Origin("env REDIS_GATEWAY_PROFILE")
    elif main is not None and isinstance(main.values.get(("profile",), (None,))[0], str):
        # The main file may declare its own profile when none is chosen explicitly.
        value, file_origin = main.values[("profile",)]
        chosen, origin = value, file_origin
    else:
        return DEFAULT_PROFILE, Origin("default")
    if chosen not in PROFILES:
        problems.append(
            Problem(
                "profile", origin.source, f"must be one of {list(PROFILES)}", render_value(chosen)
            )
        )
        return DEFAULT_PROFILE, origin
    return chosen, origin


def overlay_candidates(main_path: Path, profile: str) -> list[Path]:
    """Every name the profile overlay may have: `gateway.<profile>.<ext>` beside the main
    file, the main file's own suffix first (the loader reads the one that exists; the
    watcher watches them all, so an overlay created later reloads)."""
    suffixes = dict.fromkeys((main_path.suffix, *DOCUMENT_SUFFIXES))
    return [main_path.with_name(f"{main_path.stem}.{profile}{ext}") for ext in suffixes if ext]


def _overlay(main_path: Path, profile: str, problems: list[Problem]) -> Path | None:
    """`gateway.<profile>.<ext>` beside the main file, if it exists."""
    try:
        found = [p for p in overlay_candidates(main_path, profile) if p.exists() and p != main_path]
    except (OSError, ValueError):  # the main file's own problem is reported by its source
        return None
    unique = list(dict.fromkeys(found))
    if len(unique) > 1:
        problems.append(
            Problem(
                str(unique[0]),
                f"profile overlay beside {main_path}",
                f"several overlays for profile {profile}: {[str(p) for p in unique]}; keep one",
            )
        )
    return unique[0] if unique else None


def _collect(inputs: ConfigInputs) -> _Collected:
    """Read every layer (no validation); problems are collected, never raised."""
    problems: list[Problem] = []
    layers: list[Layer] = []
    main_path = inputs.main_path
    main = (
        FileSource(main_path, text=inputs.main_text, fmt=inputs.main_format).load()
        if main_path is not None
        else None
    )
    profile, profile_origin = _choose_profile(inputs, main, problems)
    defaults = PROFILE_DEFAULTS.get(profile)
    if defaults:
        origin = Origin(f"default for the {profile} profile")
        layers.append(
            Layer("profile defaults", {path: (value, origin) for path, value in defaults.items()})
        )
    if main is not None and main_path is not None:
        layers.append(main)
        overlay = _overlay(main_path, profile, problems)
        if overlay is not None:
            layers.append(FileSource(overlay, "profile file").load())
    for directory, source_class in (
        (_path(inputs.configmap_dir, inputs.env, "REDIS_GATEWAY_CONFIGMAP_DIR"), ConfigMapSource),
        (_path(inputs.secrets_dir, inputs.env, "REDIS_GATEWAY_SECRETS_DIR"), SecretsDirSource),
    ):
        if directory is not None:
            layers.append(source_class(directory).load())
    layers.append(EnvSource(inputs.env).load())
    layers.append(OverridesSource(tuple(inputs.overrides)).load())
    return _Collected(layers, profile, profile_origin, problems)


def _profile_conflict(
    collected: _Collected, merged: Merged, problems: list[Problem]
) -> list[Problem]:
    """A `profile = ...` in a file that contradicts the profile chosen by --profile/env."""
    declared = merged.origins.get(("profile",))
    if (
        declared is None
        or merged.data.get("profile") == collected.profile
        or any(getattr(p, "key", None) == "profile" for p in problems)
    ):
        return []
    return [
        Problem(
            "profile",
            declared.source,
            f"conflicts with the profile {collected.profile!r} chosen by "
            f"{collected.profile_origin.source}",
            None if declared.secret else render_value(merged.data.get("profile")),
            secret=declared.secret,
        )
    ]


def load_config(inputs: ConfigInputs, fingerprint_key: bytes | None = None) -> LoadedConfig:
    """Load, merge and validate every layer; raise ConfigError listing ALL problems.

    ``hash`` keys the secrets' fingerprints with ``fingerprint_key``, or else with the
    key in the config's state directory when it may be read (never created here).

    Both the result and the error carry ``inputs_fingerprint``: the fingerprint of
    the very bytes that were read.
    """
    collected = _collect(inputs)
    merged = merge(collected.layers)
    collected.layers.append(resolve_file_refs(merged))
    fingerprint = _digest(collected)
    problems = list(collected.problems)
    if inputs.restore is not None:
        problems.extend(apply_restore(merged, inputs.restore, collected.profile))
    for layer in collected.layers:
        problems.extend(layer.problems)
    problems.extend(set_by_directories(collected.layers))
    problems.extend(_profile_conflict(collected, merged, problems))
    merged.set(("profile",), collected.profile, collected.profile_origin)
    config: Config | None = None
    try:
        config = Config.model_validate(merged.data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, merged))
        problems.extend(profile_problems_despite(exc, merged))
    if config is not None:
        problems.extend(check_profile(config, source_of(merged)))
        problems.extend(unresolvable_hosts(config, merged))
    if problems or config is None:
        error = ConfigError(problems)
        error.inputs_fingerprint = fingerprint
        raise error
    provenance = {}
    for path, _value in flatten(dump_redacted(config)):
        origin = merged.origin_of(path)
        provenance[".".join(path)] = origin.source if origin else "default"
    watched = [p for layer in collected.layers for p in layer.watched]
    warnings = [w for layer in collected.layers for w in layer.warnings]
    return LoadedConfig(
        config=config,
        provenance=provenance,
        hash=config_hash(
            config, fingerprint_key or read_fingerprint_key(state_dir_of(config, dict(inputs.env)))
        ),
        watched_paths=tuple(dict.fromkeys(watched)),
        warnings=tuple(dict.fromkeys(warnings)),
        inputs_fingerprint=fingerprint,
    )


def peek_section(inputs: ConfigInputs, section: str) -> Config | None:
    """A config of which only ``section`` (e.g. ``"kubernetes"``) was read from the
    layers, the rest left at the defaults: what must be known before the whole config can
    be (the Kubernetes API source fills the directories the rest may need).

    None when a layer has problems of its own (a file that cannot be read may hold the
    section; the full load reports them); ConfigError with the section's own problems.
    """
    collected = _collect(inputs)
    if any(layer.problems for layer in collected.layers):
        return None
    merged = merge(collected.layers)
    path = tuple(section.split("."))
    node: object = merged.data
    for part in path:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    tree: dict[str, object] = {path[-1]: node}
    for part in reversed(path[:-1]):
        tree = {part: tree}
    problems = [p for p in set_by_directories(collected.layers) if p.key.startswith(section)]
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, merged))
        config = None
    if problems or config is None:
        raise ConfigError(problems)
    return config


def fingerprint_inputs(inputs: ConfigInputs) -> str:
    """Cheap hash of every raw input (file bytes, directory entries, env, --set).

    Changes whenever any input's content changes, including files behind a
    Kubernetes `..data` symlink and `*_file` targets; never raises.
    """
    try:
        collected = _collect(inputs)
        collected.layers.append(resolve_file_refs(merge(collected.layers)))
    except Exception as exc:  # a fingerprint must never take the watcher down
        return hashlib.sha256(repr(exc).encode()).hexdigest()[:16]
    return _digest(collected)


def _digest(collected: _Collected) -> str:
    digest = hashlib.sha256()
    digest.update(collected.profile.encode())
    for layer in collected.layers:
        if layer.unsettled:
            # Caught mid-write: this fingerprint must never equal another one, so the
            # watcher keeps waiting and a reload never takes the read as settled.
            digest.update(os.urandom(16))
        digest.update(layer.name.encode() + b"\0")
        for chunk in layer.raw:
            digest.update(hashlib.sha256(chunk).digest())
        for problem in layer.problems:
            digest.update(str(problem).encode())
    return digest.hexdigest()[:16]
