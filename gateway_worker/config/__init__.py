"""The configuration schema: frozen pydantic v2 models, shared by supervisor and workers.

This module is the single source of truth for every key: its type, default,
constraints and description. `docs/configuration.md` and `redis-gateway config
schema` are generated from it. Layering, provenance and profile rules live in
`supervisor.config`; this module only knows what a *valid* configuration is.

Secrets are `SecretStr` everywhere. To hand a config to a worker with the secrets
intact use `dump_with_secrets()`; never `model_dump_json()` (it masks them).
"""

from gateway_worker.config.access import (
    ApiKeyConfig,
    AuthConfig,
    CommandPolicyName,
    PolicyConfig,
    RateLimitConfig,
)
from gateway_worker.config.dumps import (
    SECRET_MASK,
    config_hash,
    dump_redacted,
    dump_with_secrets,
    redact_url,
)
from gateway_worker.config.fields import (
    DANGEROUS_COMMANDS,
    HTTP_METHODS,
    LOG_LEVELS,
    PROFILES,
    Profile,
)
from gateway_worker.config.kubernetes import KubernetesConfig
from gateway_worker.config.model import Config
from gateway_worker.config.operations import (
    ApiConfig,
    FeaturesConfig,
    LoggingConfig,
    MetricsConfig,
    ObservabilityConfig,
    SupervisorConfig,
    TracingConfig,
)
from gateway_worker.config.redis_connection import RedisConfig, RedisTlsConfig
from gateway_worker.config.server import CorsConfig, ServerConfig

__all__ = [
    "DANGEROUS_COMMANDS",
    "HTTP_METHODS",
    "LOG_LEVELS",
    "PROFILES",
    "SECRET_MASK",
    "ApiConfig",
    "ApiKeyConfig",
    "AuthConfig",
    "CommandPolicyName",
    "Config",
    "CorsConfig",
    "FeaturesConfig",
    "KubernetesConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ObservabilityConfig",
    "PolicyConfig",
    "Profile",
    "RateLimitConfig",
    "RedisConfig",
    "RedisTlsConfig",
    "ServerConfig",
    "SupervisorConfig",
    "TracingConfig",
    "config_hash",
    "dump_redacted",
    "dump_with_secrets",
    "redact_url",
]
