"""`redis-gateway run` with the API source (config section ``kubernetes``).

Before the first generation: read the section alone (``peek_section``: the rest of the
config may need the Secret), start a ``KubernetesSource`` writing into a fresh private
directory under the runtime dir, wait (``kubernetes.sync_timeout_seconds``) until every
object was listed, and hand back the inputs with the ConfigMap and secrets directory
layers pointing at the mirrors. From then on the mirrors are ordinary kubelet-style
volumes: the file watcher turns every change into the usual debounced reload, and the
history names its trigger ``ConfigMap`` or ``Secret``.

The mirror holds Secret values, so it lives in the runtime dir (``$RUNTIME_DIRECTORY``,
else ``$XDG_RUNTIME_DIR``, else the temp dir: tmpfs in a pod or under systemd), never in
the state directory, and is removed when the source stops.

The operator's own ``--configmap-dir`` / ``--secrets-dir`` (or their env variables) win:
that object is not mirrored (nor asked for), and a warning says so.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway_worker.config import KubernetesConfig, LoggingConfig
from supervisor import logging as sup_logging
from supervisor.config import ConfigError, ConfigInputs, peek_section
from supervisor.kubernetes.errors import KubernetesError
from supervisor.kubernetes.settings import KubernetesSettings
from supervisor.kubernetes.source import KubernetesSource

log = structlog.get_logger("redis_gateway.kubernetes")

#: (the object's setting, the ConfigInputs field, the option, its env variable)
_LAYERS = (
    ("configmap", "configmap_dir", "--configmap-dir", "REDIS_GATEWAY_CONFIGMAP_DIR"),
    ("secret", "secrets_dir", "--secrets-dir", "REDIS_GATEWAY_SECRETS_DIR"),
)


_KINDS = {"configmap": "ConfigMap", "secret": "Secret"}


class SyncError(KubernetesError):
    """The first list of an object did not complete in time (API unreachable, 401/403...)."""


def runtime_parent(env: Mapping[str, str]) -> Path:
    """Where the mirror's private directory goes: never the state directory."""
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(runtime or env.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())


@dataclass
class ApiSource:
    """A started, synced source and the inputs that read its mirrors."""

    source: KubernetesSource
    directory: Path
    inputs: ConfigInputs

    def close(self) -> None:
        """Stop watching and remove the mirrors (they hold Secret values)."""
        self.source.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        log.info("kubernetes.stopped")


def start_if_enabled(
    inputs: ConfigInputs, prepare: Callable[[ConfigInputs], None] | None = None
) -> ApiSource | None:
    """Start the API source when ``kubernetes.enabled``; None when it is off (or when
    the layers cannot be read: the full load reports why). ``prepare`` runs first when
    it is on (``run`` passes ``log_early``).

    Raises ``ConfigError`` (the section is invalid), ``SettingsError`` (no API URL or
    namespace) or ``SyncError`` (not listed within ``sync_timeout_seconds``)."""
    peeked = peek_section(inputs, "kubernetes")
    if peeked is None or not peeked.kubernetes.enabled:
        return None
    if prepare is not None:
        prepare(inputs)
    section = _unmounted(peeked.kubernetes, inputs)
    if section is None:
        return None
    settings = KubernetesSettings.from_config(section)
    directory = Path(
        tempfile.mkdtemp(prefix="redis-gateway-kubernetes-", dir=runtime_parent(inputs.env))
    )
    try:
        source = KubernetesSource(settings, directory, env=inputs.env)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    started = ApiSource(source, directory, _mirrored(inputs, source))
    try:
        _start_and_sync(source, section)
    except BaseException:
        started.close()
        raise
    return started


def _start_and_sync(source: KubernetesSource, section: KubernetesConfig) -> None:
    # Field names without "secret": the log redaction masks those, and a name is none.
    log.info(
        "kubernetes.started",
        api_url=source.api_url,
        namespace=source.namespace,
        objects=_objects(section),
        directory=str(source.directory),
    )
    source.start()  # after the event: the threads' own events follow it
    if not source.wait_synced(section.sync_timeout_seconds):
        raise SyncError(
            f"kubernetes: the API at {source.api_url} did not list "
            f"{'; '.join(source.unsynced())} in namespace {source.namespace} within "
            f"{section.sync_timeout_seconds:g} s (kubernetes.sync_timeout_seconds)"
        )
    log.info("kubernetes.synced", objects=_objects(section))


def log_early(inputs: ConfigInputs) -> None:
    """Logging as configured (as far as it can be read yet), so that the source's events
    look like every later one; ``run`` configures it again from the whole config."""
    try:
        peeked = peek_section(inputs, "observability.logging")
    except ConfigError:
        peeked = None
    settings = peeked.observability.logging if peeked is not None else LoggingConfig()
    try:
        sup_logging.configure(settings)
    except OSError:
        sup_logging.configure(LoggingConfig())  # the full load reports the output


def _unmounted(section: KubernetesConfig, inputs: ConfigInputs) -> KubernetesConfig | None:
    """The section without the objects whose directory the operator gave; None when
    nothing is left to mirror."""
    names: dict[str, str | None] = {}
    for name, field, option, var in _LAYERS:
        wanted = getattr(section, name)
        given = getattr(inputs, field) or inputs.env.get(var)
        if wanted is not None and given:
            log.warning(
                "kubernetes.mirror_unused",
                object=f"{_KINDS[name]} {wanted}",
                directory=str(given),
                reason=f"{option} (or {var}) is given and wins over the API source",
            )
            names[name] = None
    if all((names.get(n, getattr(section, n)) is None) for n, *_ in _LAYERS):
        log.warning("kubernetes.not_started", reason="every object's directory is given")
        return None
    return section.model_copy(update=names)


def _mirrored(inputs: ConfigInputs, source: KubernetesSource) -> ConfigInputs:
    """``inputs`` reading the mirrors (``_unmounted`` left out the operator's dirs)."""
    return dataclasses.replace(
        inputs,
        configmap_dir=source.configmap_dir or inputs.configmap_dir,
        secrets_dir=source.secrets_dir or inputs.secrets_dir,
    )


def _objects(section: KubernetesConfig) -> list[str]:
    return [
        f"{kind} {getattr(section, name)}"
        for name, kind in _KINDS.items()
        if getattr(section, name) is not None
    ]
