"""Settings of the Kubernetes API source, built from the config section ``kubernetes``
(``gateway_worker.config.kubernetes``: its defaults and rules are the only ones).

Defaults are the in-cluster service account: the API at
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the token and CA that
kubelet projects under ``/var/run/secrets/kubernetes.io/serviceaccount/``, and the
pod's own namespace from the ``namespace`` file beside them. The defaults that depend
on the environment are resolved by ``resolve_api_url`` / ``resolve_namespace`` when the
source is built, not when the settings are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from gateway_worker.config import KubernetesConfig
from gateway_worker.config import kubernetes as section
from supervisor.kubernetes.errors import SettingsError

SERVICE_ACCOUNT_DIR = Path(section.SERVICE_ACCOUNT_DIR)
DEFAULT_TOKEN_PATH = Path(section.DEFAULT_TOKEN_PATH)
DEFAULT_CA_PATH = Path(section.DEFAULT_CA_PATH)
DEFAULT_NAMESPACE_PATH = Path(section.DEFAULT_NAMESPACE_PATH)


@dataclass(frozen=True)
class KubernetesSettings:
    """What to mirror and how to reach the API (the section ``kubernetes``, with paths).

    ``namespace`` None: the pod's own (service account ``namespace`` file).
    ``api_url`` None: in-cluster, from ``KUBERNETES_SERVICE_HOST``/``_PORT``.
    ``token_path`` None: send no token (e.g. through ``kubectl proxy``); it is read
    again on every (re)connect because kubelet rotates it.
    ``ca_path`` None: the system trust store; used only for an https URL.
    ``timeout_seconds``: connect and read timeout of a request; a watch stream may
    stay silent for ``watch_timeout_seconds`` (the server-side ``timeoutSeconds``,
    after which the server ends the stream) plus this.
    Reconnects wait ``backoff_initial_seconds``, doubling up to ``backoff_max_seconds``.
    Raises ``SettingsError`` for what the config section refuses.
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
        self.section()

    def section(self) -> KubernetesConfig:
        """These settings as the (enabled) config section; its rules decide."""
        try:
            return KubernetesConfig(
                enabled=True,
                namespace=self.namespace,
                configmap=self.configmap,
                secret=self.secret,
                api_url=self.api_url,
                token_path="" if self.token_path is None else str(self.token_path),
                ca_path="" if self.ca_path is None else str(self.ca_path),
                timeout_seconds=self.timeout_seconds,
                watch_timeout_seconds=self.watch_timeout_seconds,
                backoff_initial_seconds=self.backoff_initial_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
            )
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    @classmethod
    def from_config(cls, section: KubernetesConfig) -> KubernetesSettings:
        """The settings of the config section ``kubernetes`` (empty paths: none)."""
        return cls(
            namespace=section.namespace,
            configmap=section.configmap,
            secret=section.secret,
            api_url=section.api_url,
            token_path=Path(section.token_path) if section.token_path else None,
            ca_path=Path(section.ca_path) if section.ca_path else None,
            timeout_seconds=section.timeout_seconds,
            watch_timeout_seconds=section.watch_timeout_seconds,
            backoff_initial_seconds=section.backoff_initial_seconds,
            backoff_max_seconds=section.backoff_max_seconds,
        )


def _describe(exc: ValidationError) -> str:
    """pydantic's errors as one line per key (the section hides inputs in errors)."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in ("kubernetes", *err["loc"]))
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


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
    try:
        return section.check_name("namespace", value)
    except ValueError as exc:
        raise SettingsError(f"kubernetes.namespace read from {namespace_path}: {exc}") from None
