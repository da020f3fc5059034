"""The project's exception tree (one root).

    GatewayError
    ├── ConfigError            (supervisor.config) invalid or unreadable configuration;
    │                          carries every problem found, never a secret value
    ├── BootError              (gateway_worker.app) a worker cannot start
    ├── RedisUnavailable       Redis cannot be reached / connection lost
    ├── ScriptTimeout          (gateway_worker.redis.scripts) a script ran past its
    │                          deadline: stopped with SCRIPT KILL, or could not be (504)
    ├── ReloadError            (supervisor) a reload failed; the old generation keeps serving
    └── ControlError           (supervisor) the control socket cannot be reached

Control-flow exceptions that must not be swallowed by ``except Exception``
subclass ``BaseException`` (none yet).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error this project raises on purpose."""


class RedisUnavailable(GatewayError):
    """Redis cannot be reached, or the connection was lost mid-request."""


class ScriptTimeout(GatewayError):
    """A script ran past ``redis.command_timeout_seconds``; the message says whether the
    gateway stopped it (SCRIPT KILL / FUNCTION KILL) or why it could not (UNKILLABLE)."""
