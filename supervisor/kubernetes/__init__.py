"""Optional Kubernetes API source (issue 9, section 5): mirror a ConfigMap and a
Secret from the API into local directories in kubelet's volume layout.

Wiring (what ``wiring.start_if_enabled`` does for ``run``)::

    source = KubernetesSource(KubernetesSettings.from_config(config.kubernetes),
                              directory=private_dir_under_the_runtime_dir)
    source.start()
    source.wait_synced(timeout=30)       # first list done (or False: API unreachable)
    inputs = ConfigInputs(configmap_dir=source.configmap_dir,
                          secrets_dir=source.secrets_dir, ...)
    ...
    source.stop()

The loader and the file watcher then see ordinary mounted volumes. Modules:
settings.py (the settings and their in-cluster defaults), api.py (list and watch over
HTTP), objects.py (the JSON edge: payloads, resourceVersions), mirror.py (kubelet's
atomic directory layout), backoff.py, source.py (the loop), errors.py (the exception
tree), wiring.py (what `run` does with it: start, wait, point the config layers at
the mirrors, stop). See docs/kubernetes.md.
"""

from supervisor.kubernetes.errors import (
    ApiError,
    GoneError,
    KubernetesError,
    MirrorError,
    ProtocolError,
    SettingsError,
    TransportError,
)
from supervisor.kubernetes.settings import KubernetesSettings
from supervisor.kubernetes.source import KubernetesSource

__all__ = [
    "ApiError",
    "GoneError",
    "KubernetesError",
    "KubernetesSettings",
    "KubernetesSource",
    "MirrorError",
    "ProtocolError",
    "SettingsError",
    "TransportError",
]
