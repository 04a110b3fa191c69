"""workers: runs sweeps as Ray Tune experiments (DESIGN §2: imports l0models, service, ray).

Modules (imported on use, so ``l0sweep --help`` stays fast):

- ``trainable``: the function trainable; one Ray trial trains one pack of K ≥ 1 trial
  configurations through a ``PackEngine`` (``single_engine``, ``sequential_engine``,
  ``fused.fused_pack_engine``).
- ``search``: spec → packs for ``grid``/``random``, multi-objective ``OptunaSearch``.
- ``callback``: the driver-side ``tune.Callback`` that writes results through ``service``.
- ``runner``: claims sweeps, runs them, honours cancel, resumes after a crash.
- ``store``: the runner's adapter over ``service.repository``.
- ``cluster``, ``embedded``, ``client``, ``render``, ``demo``, ``cli``: Ray connection, the
  one-process service, the HTTP client and the ``l0sweep`` command line.
"""
