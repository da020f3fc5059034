"""Redis Cluster behind the ``RedisExecutor`` interface (``redis.mode = "cluster"``).

* ``slots``: the hash slot of a key (CRC16, hash tags).
* ``slot_map``: which primary serves which slot (CLUSTER SHARDS / SLOTS parsed).
* ``discovery``: the current map and its refreshes.
* ``routing``: where a command goes (a slot, any primary, parts to merge, refused).
* ``merge``: how split and fanned-out replies are put back together; SCAN cursors.
* ``nodes``: per node: the shared connection, a dedicated pool, a script guard.
* ``calls``: one command to one target, following MOVED/ASK/TRYAGAIN/CLUSTERDOWN.
* ``dedicated``: blocking commands, scripts, MULTI/EXEC, borrowed connections.
* ``client``: ``ClusterClient``, the backend the app uses in cluster mode.
"""
