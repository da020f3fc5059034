"""The exceptions of the Kubernetes API source, under one root.

::

    KubernetesError                 anything this package raises
    ├── SettingsError               the settings cannot work (bad name, no API URL)
    ├── TransportError              no usable answer: connect, TLS, read, token file
    ├── ProtocolError               an answer that is not the JSON shape expected
    ├── MirrorError                 the local mirror directory cannot be written
    └── ApiError                    the API answered an error status (or ERROR event)
        └── GoneError               410: the resourceVersion is too old, list again

No message ever carries a ConfigMap or Secret value, nor the token: they name the
object, the key, the HTTP status and the API's own ``Status`` reason and message
(which the API server writes without object data). Errors raised while a body was at
hand are raised *outside* the ``except`` block that caught the parse failure, so the
original exception (``json.JSONDecodeError.doc`` holds the whole document) is not
kept as ``__context__`` either.
"""

from __future__ import annotations


class KubernetesError(Exception):
    """Root of the exceptions raised by ``supervisor.kubernetes``."""


class SettingsError(KubernetesError):
    """The settings cannot work (a malformed name, no API URL, bad bounds)."""


class TransportError(KubernetesError):
    """The request got no usable answer (connect, TLS, read, token file)."""


class ProtocolError(KubernetesError):
    """The API answered something other than the JSON shape expected."""


class MirrorError(KubernetesError):
    """The mirror directory cannot be written."""


class ApiError(KubernetesError):
    """The API answered with an error status, or a watch sent an ERROR event."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(
            f"HTTP {status} {reason}: {message}" if message else f"HTTP {status} {reason}"
        )


class GoneError(ApiError):
    """410 Gone: the resourceVersion asked for is no longer kept; list again."""
