"""``python -m workers.cli``: the same as the ``l0sweep`` command."""

from workers.cli.commands import app

app(prog_name="l0sweep")
