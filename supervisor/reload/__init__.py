"""Where reload happens: the transaction (``transaction``), how it ended (``outcome``),
the serving generation it switches (``generations``), what the file watcher may apply
by itself (``watch_policy``), and whether the running config matches its sources
(``drift``)."""
