"""`Config`: the whole effective configuration, and the rules across its sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway_worker.config.access import AuthConfig, PolicyConfig
from gateway_worker.config.fields import Profile, Section
from gateway_worker.config.kubernetes import KubernetesConfig
from gateway_worker.config.operations import (
    ApiConfig,
    FeaturesConfig,
    ObservabilityConfig,
    SupervisorConfig,
)
from gateway_worker.config.redis_connection import RedisConfig
from gateway_worker.config.server import ServerConfig


class Config(Section):
    """The whole effective configuration of a gateway."""

    profile: Profile = Field(
        "dev", description="Deployment profile (set by --profile / REDIS_GATEWAY_PROFILE)."
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Redis connection.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Command policy.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="Protocol mounts.")
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig, description="Logs, metrics, traces."
    )
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Features.")
    supervisor: SupervisorConfig = Field(
        default_factory=SupervisorConfig, description="Supervisor process."
    )
    kubernetes: KubernetesConfig = Field(
        default_factory=KubernetesConfig, description="Kubernetes API source (optional)."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Config:
        m = self.observability.metrics
        if m.enabled and m.port == self.server.port:
            raise ValueError(f"observability.metrics.port ({m.port}) must differ from server.port")
        if self.features.admin_endpoints and not self.auth.enabled:
            admins = [k for k in self.auth.api_keys if k.admin]
            if not admins and self.auth.jwt_secret is None:
                raise ValueError(
                    "features.admin_endpoints needs an admin credential "
                    "(an auth.api_keys entry with admin = true, or a jwt_secret)"
                )
        return self
