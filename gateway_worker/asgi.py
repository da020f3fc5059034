"""ASGI at the edge: the types of what an HTTP engine and the app pass each other.

ASGI scopes and events are plain dicts whose value types depend on the key (``str``
for ``method``, ``bytes`` for ``raw_path``, lists of byte pairs for ``headers``, ...).
uvicorn types them as unions of TypedDicts, which code would have to narrow at every
access, on the request path. They are named once here, as mappings of untyped values
(the shape ASGI servers and clients such as httpx agree on); only the engines
(``gateway_worker.serving``) and the app's first steps (``gateway_worker.app``) touch
them, and handlers see typed ``exchange`` values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

#: An HTTP connection scope. Any: ASGI values are typed by their key, not by the dict.
Scope: TypeAlias = MutableMapping[str, Any]
#: One ASGI event (``http.request``, ``http.response.start``, ...). Any: as for Scope.
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application (the gateway's app, or uvicorn's middleware around it).
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
