"""Settings of the Kubernetes API source (the future config section ``kubernetes``).

Defaults are the in-cluster service account: the API at
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the token and CA that
kubelet projects under ``/var/run/secrets/kubernetes.io/serviceaccount/``, and the
pod's own namespace from the ``namespace`` file beside them. The defaults that depend
on the environment are resolved by ``resolve_api_url`` / ``resolve_namespace`` when the
source is built, not when the settings are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor.kubernetes.errors import SettingsError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TOKEN_PATH = SERVICE_ACCOUNT_DIR / "token"
DEFAULT_CA_PATH = SERVICE_ACCOUNT_DIR / "ca.crt"
DEFAULT_NAMESPACE_PATH = SERVICE_ACCOUNT_DIR / "namespace"

# RFC 1123: a namespace is a DNS label, a ConfigMap or Secret name a DNS subdomain.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


@dataclass(frozen=True)
class KubernetesSettings:
    """What to mirror and how to reach the API.

    ``namespace`` None: the pod's own (service account ``namespace`` file).
    ``api_url`` None: in-cluster, from ``KUBERNETES_SERVICE_HOST``/``_PORT``.
    ``token_path`` None: send no token (e.g. through ``kubectl proxy``); it is read
    again on every (re)connect because kubelet rotates it.
    ``ca_path`` None: the system trust store; used only for an https URL.
    ``timeout_seconds``: connect and read timeout of a request; a watch stream may
    stay silent for ``watch_timeout_seconds`` (the server-side ``timeoutSeconds``,
    after which the server ends the stream) plus this.
    Reconnects wait ``backoff_initial_seconds``, doubling up to ``backoff_max_seconds``.
    """

    namespace: str | None = None
    configmap: str | None = None
    secret: str | None = None
    api_url: str | None = None
    token_path: Path | None = DEFAULT_TOKEN_PATH
    ca_path: Path | None = DEFAULT_CA_PATH
    timeout_seconds: float = 10.0
    watch_timeout_seconds: int = 300
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.configmap is None and self.secret is None:
            raise SettingsError("kubernetes: name a configmap, a secret or both")
        if self.namespace is not None:
            _check_name("namespace", self.namespace, _DNS_LABEL, 63)
        for field, value in (("configmap", self.configmap), ("secret", self.secret)):
            if value is not None:
                _check_name(field, value, _DNS_SUBDOMAIN, 253)
        if not self.timeout_seconds > 0:
            raise SettingsError("kubernetes.timeout_seconds must be > 0")
        if self.watch_timeout_seconds < 1:
            raise SettingsError("kubernetes.watch_timeout_seconds must be >= 1")
        if not 0 < self.backoff_initial_seconds <= self.backoff_max_seconds:
            raise SettingsError(
                "kubernetes: need 0 < backoff_initial_seconds <= backoff_max_seconds"
            )


def _check_name(field: str, value: str, pattern: re.Pattern[str], limit: int) -> None:
    # The name goes into the URL path: a strict pattern also rules out injection.
    if len(value) > limit or not pattern.match(value):
        raise SettingsError(
            f"kubernetes.{field} has value {value!r}: not a valid "
            f"Kubernetes name (lowercase letters, digits, '-'"
            f"{', ' + repr('.') if pattern is _DNS_SUBDOMAIN else ''}; "
            f"at most {limit} characters)"
        )


def resolve_api_url(settings: KubernetesSettings, env: Mapping[str, str]) -> str:
    """The API base URL: the configured one, else the in-cluster service."""
    if settings.api_url:
        return settings.api_url.rstrip("/")
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise SettingsError(
            "kubernetes.api_url is not set and KUBERNETES_SERVICE_HOST/"
            "KUBERNETES_SERVICE_PORT are not in the environment "
            "(not running in a pod?)"
        )
    if ":" in host:  # an IPv6 cluster
        host = f"[{host}]"
    return f"https://{host}:{port}"


def resolve_namespace(
    settings: KubernetesSettings, namespace_path: Path = DEFAULT_NAMESPACE_PATH
) -> str:
    """The namespace: the configured one, else the pod's own."""
    if settings.namespace is not None:
        return settings.namespace
    try:
        value = namespace_path.read_text().strip()
    except OSError as exc:
        raise SettingsError(
            f"kubernetes.namespace is not set and {namespace_path} "
            f"cannot be read ({os.strerror(exc.errno or 0)})"
        ) from None
    _check_name("namespace", value, _DNS_LABEL, 63)
    return value
