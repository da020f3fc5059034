"""The Upstash-compatible REST protocol (API.md §1).

* ``handler``: ``Upstash``, the handler the app mounts (routes, sync tokens, replies).
* ``parsing``: request → commands (JSON body form, path form).
* ``encodings``: result encodings: text JSON, base64 (``Upstash-Encoding``), RESP2.
"""

from gateway_worker.protocols.upstash.handler import Upstash

__all__ = ["Upstash"]
