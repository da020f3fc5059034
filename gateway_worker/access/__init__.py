"""Who may do what: the checks a request passes before a protocol handler runs.

* ``auth``: who is calling (API keys compared in constant time, HS256 JWTs) → ``Principal``.
* ``policy``: which commands a principal may run (``CommandGuard`` per principal).
* ``key_confinement``: ``key_prefix`` confinement, on the key table of
  ``gateway_worker.redis.keys`` (options read as Redis reads them: ``command_syntax``).
* ``rate_limit``: GCRA in Redis, shared by every worker and replica.
* ``cors``: CORS preflights and response headers.

The order in which the app applies them is in ``gateway_worker.app``.
"""
