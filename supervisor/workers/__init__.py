"""The workers as the supervisor sees them: the ``WorkerHandle`` protocol (``handle``),
the real child process (``process``), the pool that spawns, reaps and kills them
(``pool``), warm standbys (``standby``), what each receives (``setup``), crash backoff
(``backoff``) and how many there should be (``scale``)."""
