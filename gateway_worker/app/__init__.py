"""The worker's ASGI app: routes, and the order of the cross-cutting steps.

* ``gateway``: ``GatewayApp`` and ``build_app``: the step order of one request (health,
  CORS, method override, body limit, auth, rate limit, admin, protocol dispatch).
* ``limits``: the request body limit and the request deadlines (504).
* ``responses``: writing a ``Response`` over ASGI (bodies and streams).
* ``admin``: the ``/admin/*`` endpoints.

Interface used by the worker entry point (and nothing else may be assumed):
``build_app(config) -> GatewayApp``; ``await app.startup()`` (raises ``BootError``);
the app is an ASGI callable served with ``lifespan="off"``; ``await app.shutdown()``.
"""

from gateway_worker.app.gateway import BootError, GatewayApp, build_app

__all__ = ["BootError", "GatewayApp", "build_app"]
