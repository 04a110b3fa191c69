"""What a person runs: the ``l0sweep`` command line and what it needs.

- ``commands``: the typer app (console script ``l0sweep`` → ``workers.cli:app``).
- ``client``: the HTTP client of the REST API; ``render``: rich tables and progress.
- ``plot``: the SVG of the error–sparsity–FLOPs trade-off.
- ``embedded``: the one-process service (SQLite, local Ray, uvicorn, runner).
- ``demo``: the real MNIST sweep of ``l0sweep demo``.
"""

from workers.cli.commands import app

__all__ = ["app"]
