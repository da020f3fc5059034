"""The "native" HTTP engine (``server.http_engine = "native"``): less CPU per request
than uvicorn's protocol, same behaviour.

* ``connection``: ``NativeHttpProtocol``, one HTTP/1.1 connection (httptools parsing,
  pipelining, flow control, keep-alive, the drain).
* ``cycle``: one request/response on it (ASGI ``receive``/``send``, the response head).
"""
