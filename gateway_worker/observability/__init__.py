"""What a worker tells the outside about itself.

* ``logging``: structlog setup (JSON or console lines, secrets redacted, reopen on
  SIGUSR1); the supervisor uses it too.
* ``metrics``: request metrics (prometheus-client, aggregated by the supervisor).
* ``tracing``: optional OpenTelemetry spans per request and per Redis call.

Nothing is imported here: the supervisor imports ``observability.logging`` alone and
must not load prometheus-client or OpenTelemetry with it.
"""
