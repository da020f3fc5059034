"""Where the state directory is, and its fingerprint key: what the loader needs of it
(the rest of the state directory is ``supervisor.config.store``)."""

from __future__ import annotations

import os
from pathlib import Path

from gateway_worker.config import Config

KEY_FILE = "fingerprint.key"
KEY_BYTES = 32


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """Where state lives when ``supervisor.state_dir`` is unset.

    systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``), else ``$XDG_STATE_HOME``,
    else ``/var/lib/redis-gateway`` for root, else ``~/.local/state/redis-gateway``.
    A container sets ``supervisor.state_dir`` to its writable volume.
    """
    env = dict(os.environ) if env is None else env
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "redis-gateway"
    if os.geteuid() == 0:
        return Path("/var/lib/redis-gateway")
    return Path.home() / ".local" / "state" / "redis-gateway"


def state_dir_of(config: Config, env: dict[str, str] | None = None) -> Path:
    configured = config.supervisor.state_dir
    return Path(configured) if configured else default_state_dir(env)


def read_fingerprint_key(directory: Path) -> bytes | None:
    """The key, if the state directory has one we may read (the CLI never creates it)."""
    try:
        data = (directory / KEY_FILE).read_bytes()
    except OSError:
        return None
    return data if len(data) == KEY_BYTES else None
