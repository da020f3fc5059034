"""Redis Sentinel behind the ``RedisExecutor`` interface (``redis.mode = "sentinel"``).

* ``discovery``: ask each Sentinel for the master, verify it with ``ROLE``.
* ``watch``: follow ``+switch-master`` on a Sentinel, and check the master's ``ROLE``.
* ``client``: ``SentinelClient``, a standalone client pointed at the master it found,
  and moved when the master changes.
"""
