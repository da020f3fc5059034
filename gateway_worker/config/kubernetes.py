"""`kubernetes`: the optional Kubernetes API source of the supervisor.

When enabled, the supervisor mirrors the named ConfigMap and/or Secret from the API into
local directories (kubelet's volume layout) and reads them as the ConfigMap and secrets
directory layers; every change on the API becomes a reload (``supervisor.kubernetes``,
docs/kubernetes.md). The defaults are the in-cluster service account.

The rules below are the only home of what a valid source setting is: the supervisor's
``KubernetesSettings`` is built from this section and validated by it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway_worker.config.fields import PositiveFloat, Section

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TOKEN_PATH = f"{SERVICE_ACCOUNT_DIR}/token"
DEFAULT_CA_PATH = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
DEFAULT_NAMESPACE_PATH = f"{SERVICE_ACCOUNT_DIR}/namespace"

# RFC 1123: a namespace is a DNS label, a ConfigMap or Secret name a DNS subdomain.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def check_name(field: str, value: str) -> str:
    """A namespace (DNS label, 63 characters) or an object name (DNS subdomain, 253).

    The name goes into the URL path: the strict pattern also rules out injection."""
    label = field == "namespace"
    pattern, limit = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
    if len(value) > limit or not pattern.match(value):
        dots = "" if label else ", '.'"
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (lowercase letters, digits, "
            f"'-'{dots}; starting and ending with a letter or digit; at most {limit} "
            "characters)"
        )
    return value


class KubernetesConfig(Section):
    """Kubernetes API source: mirror a ConfigMap and/or a Secret (docs/kubernetes.md)."""

    enabled: bool = Field(
        False,
        description="Read the ConfigMap/Secret from the API instead of mounted volumes: "
        "changes apply at once (no kubelet sync delay). Needs RBAC get/list/watch on them. "
        "The section is read once, at start (a change is `restart_required`).",
    )
    namespace: str | None = Field(
        None,
        description="Namespace of both objects (a DNS-1123 label). Default: the pod's own "
        "(the service account's namespace file).",
        examples=["redis-gateway"],
    )
    configmap: str | None = Field(
        None,
        description="ConfigMap mirrored as the ConfigMap directory layer (a DNS-1123 name).",
        examples=["redis-gateway-config"],
    )
    secret: str | None = Field(
        None,
        description="Secret mirrored as the secrets directory layer (a DNS-1123 name).",
        examples=["redis-gateway-secrets"],
    )
    api_url: str | None = Field(
        None,
        description="API server URL. Default: https://$KUBERNETES_SERVICE_HOST:"
        "$KUBERNETES_SERVICE_PORT (in-cluster); http:// is for a local `kubectl proxy`.",
        examples=["http://127.0.0.1:8001"],
    )
    token_path: str = Field(
        DEFAULT_TOKEN_PATH,
        description="Bearer token file, read again on every (re)connect (kubelet rotates it). "
        "Empty: send no token (`kubectl proxy`).",
    )
    ca_path: str = Field(
        DEFAULT_CA_PATH,
        description="CA bundle that verifies an https API. Empty: the system trust store.",
    )
    timeout_seconds: PositiveFloat = Field(10.0, description="Connect and read timeout.")
    watch_timeout_seconds: int = Field(
        300,
        ge=1,
        le=3600,
        description="How long one watch request lasts (the API's timeoutSeconds); then it "
        "is resumed from the last resourceVersion.",
    )
    backoff_initial_seconds: PositiveFloat = Field(
        0.5, description="First delay before reconnecting after a failure (then doubling)."
    )
    backoff_max_seconds: PositiveFloat = Field(30.0, description="Cap of the reconnect delay.")
    sync_timeout_seconds: PositiveFloat = Field(
        30.0,
        description="At start, how long `run` waits for the first list of every object "
        "before it gives up (exit 1).",
    )

    @field_validator("namespace", "configmap", "secret")
    @classmethod
    def _check_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_name(info.field_name or "", value)

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be http(s)://host[:port]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not carry a query, a fragment or credentials")
        return value

    @field_validator("token_path", "ca_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("must not contain a NUL byte")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> KubernetesConfig:
        if self.enabled and self.configmap is None and self.secret is None:
            raise ValueError(
                "kubernetes.enabled needs kubernetes.configmap, kubernetes.secret or both"
            )
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            raise ValueError(
                f"kubernetes.backoff_initial_seconds ({self.backoff_initial_seconds}) must "
                f"not exceed kubernetes.backoff_max_seconds ({self.backoff_max_seconds})"
            )
        return self
