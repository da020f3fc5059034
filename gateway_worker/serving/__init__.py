"""Serving HTTP inside a worker: the drain policy (``drain``), and the engines.

``drain.DrainPolicy`` is the one home of every deadline a drain follows; the supervisor
reads the same object (it kills a draining worker at ``kill_after_seconds``).
"""
