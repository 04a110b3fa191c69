"""workers: runs sweeps on Ray and gives people a command line (DESIGN §2: imports
``l0models``, ``service``, ray, optuna; never ``api``).

- ``workers.tune``: the execution path (runner, Ray Tune trainable, pack engines, search,
  the result-persisting callback, the database adapter, the Ray connection).
- ``workers.cli``: what a person runs (the ``l0sweep`` command, HTTP client, rendering,
  plotting, the embedded one-process service, the demo).
"""
