"""Layered configuration loading with provenance (see DESIGN.md "Configuration").

Public API (used by the CLI and the arbiter; keep it stable):

* ``ConfigInputs``: what the operator asked for (file, profile, dirs, env, --set).
* ``load_config(inputs) -> LoadedConfig``: load every layer, deep-merge, validate;
  raises ``ConfigError`` listing ALL problems (key path, source, rule, value unless
  secret).
* ``LoadedConfig.hash``: stable content hash of the effective config (secrets hashed,
  never shown); equal hashes mean "unchanged" for reloads.
* ``LoadedConfig.watched_paths``: files and directories whose change should trigger a
  reload (main file, profile file, ConfigMap dir, secrets dir, *_file targets).
"""

from supervisor.config.loader import (
    ConfigError,
    ConfigInputs,
    LoadedConfig,
    fingerprint_inputs,
    load_config,
)

__all__ = ["ConfigError", "ConfigInputs", "LoadedConfig", "fingerprint_inputs", "load_config"]
