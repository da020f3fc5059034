"""The Webdis-compatible URL protocol (API.md §2), byte for byte as Webdis answers.

* ``handler``: ``handle``, what the app mounts (methods, options, streams, ETags).
* ``requests``: request → command (``[DB/]CMD/arg/...[.ext]``, query options).
* ``fast_path``: the common ``GET /CMD/arg`` answered without the generic parsing.
* ``formats``: the extension table, ``.raw`` and bare-value formats.
* ``json_format``: the default JSON format (and JSONP).
* ``msgpack_format``: ``.msg``.
* ``etag``: ``ETag`` and ``If-None-Match``.
"""

from gateway_worker.protocols.webdis.handler import handle

__all__ = ["handle"]
