"""Serving HTTP inside a worker: the drain policy and the engines.

* ``drain``: ``DrainPolicy``, the one home of every deadline a drain follows, decided
  once from ``server.graceful_shutdown_timeout_seconds``; the supervisor reads the same
  object (it kills a draining worker at ``kill_after_seconds``).
* ``server``: ``WorkerServer`` (uvicorn's ``Server`` with the worker's signals, startup
  report and drain) and ``uvicorn_config``, which both engines run under.
* ``connection_drain``: ``ConnectionDrain``, the race-free drain of one connection,
  owned by every protocol of both engines.
* ``pending``: connections that have not sent a complete request head (header
  timeout, per-worker cap, head size limit), one registry per worker.
* ``connection_end``: how a connection ends early (a half-closed client still gets its
  answer; refusals wait for the answers owed before them).
* ``state``: ``WorkerServerState``, uvicorn's shared state plus the drain grace and
  the pending registry.
* ``uvicorn_engine``: uvicorn's httptools (or h11) protocol with that drain.
* ``native/``: the native engine, a leaner httptools protocol.
* ``write_coalescing``: one ``send`` per response for uvicorn's protocol.

Nothing is imported here: the supervisor imports ``serving.drain`` alone.
"""
