"""Long-lived streams: Upstash SSE subscriptions and MONITOR, Webdis chunked SUBSCRIBE
and Webdis WebSockets. Their sources are in ``gateway_worker.redis`` (``pubsub``,
``monitor``); their formats in the protocols; what they share is here.

* ``outbox``: ``Outbox``, a stream's bounded queue of chunks and the signals its writer
  acts on (heartbeat, drain, end), and why streams end (``REASONS``).
* ``registry``: ``StreamRegistry``, a worker's open streams: ``server.max_streams``, the
  drain (reconnect hint, then the close at ``DrainPolicy.stream_drain_seconds``), the
  sweeper (heartbeats, stalled clients), metrics by kind, generation and reason.
* ``body``: ``StreamBody``, what a protocol handler answers for a streamed response.
* ``relay``: sends a ``StreamBody`` as a chunked HTTP body.
* ``sse``: the Server-Sent Events format.
* ``services``: ``StreamServices``, what a protocol needs to open streams.
"""
