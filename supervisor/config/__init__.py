"""Layered configuration loading with provenance (see DESIGN.md "Configuration").

Public API (used by the CLI, the arbiter and the watcher; keep it stable):

* ``ConfigInputs``: what the operator asked for (file, profile, dirs, env, --set).
* ``load_config(inputs) -> LoadedConfig``: load every layer, deep-merge, validate;
  raises ``ConfigError`` listing ALL problems (key path, source, rule, value unless
  secret). Never logs or prints.
* ``LoadedConfig.provenance``: dotted key -> where its value came from
  ("file gateway.toml:12", "env REDIS_GATEWAY_SERVER__PORT", "--set server.port",
  "secret file /run/secrets/auth.jwt_secret", "default").
* ``LoadedConfig.hash``: stable content hash of the effective config (secrets hashed,
  never shown); equal hashes mean "unchanged" for reloads.
* ``LoadedConfig.watched_paths``: files and directories whose change should trigger a
  reload (main file, profile file, ConfigMap dir, secrets dir, *_file targets).
* ``fingerprint_inputs(inputs)``: cheap hash of the raw inputs for periodic re-checks.
* ``overlay_candidates(main_path, profile)``: every name a profile overlay may have.
* ``peek_section(inputs, "kubernetes")``: one section alone, before the whole config can
  be loaded (the Kubernetes API source fills the directories the rest may need).
* ``supervisor.config.cli.config_options`` / ``inputs_from_options``: the shared
  click options.

Modules: sources.py (one class per layer), formats.py (TOML/YAML/JSON + line
lookup), merge.py (deep merge, provenance, *_file), profiles.py (profile rules),
loader.py (orchestration, errors, hashes), render.py (`config show`), docs.py
(docs/configuration.md), schema.py (questions about the schema by key path).
See docs/configuration-loading.md for the rules.
"""

from supervisor.config.errors import ConfigError, Problem
from supervisor.config.loader import (
    ConfigInputs,
    LoadedConfig,
    fingerprint_inputs,
    load_config,
    overlay_candidates,
    peek_section,
)

__all__ = [
    "ConfigError",
    "ConfigInputs",
    "LoadedConfig",
    "Problem",
    "fingerprint_inputs",
    "load_config",
    "overlay_candidates",
    "peek_section",
]
