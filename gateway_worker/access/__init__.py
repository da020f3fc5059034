"""Who may do what: the checks a request passes before a protocol handler runs.

* ``auth``: who is calling (API keys compared in constant time, HS256 JWTs) → ``Principal``.
* ``policy``: which commands a principal may run (``CommandGuard`` per principal).
* ``key_confinement``: where the keys are in a command's arguments, for ``key_prefix``
  (options read as Redis reads them: ``command_syntax``).
* ``rate_limit``: GCRA in Redis, shared by every worker and replica.
* ``cors``: CORS preflights and response headers.

The order in which the app applies them is in ``gateway_worker.app``.
"""
