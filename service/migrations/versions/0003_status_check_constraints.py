"""CHECK constraints on sweeps.status and trials.status (service.vocabulary)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The statuses as of this revision, written out: a migration must not change meaning when
# service.vocabulary grows (a new status gets its own migration).
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
CONDITION = "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES))


def upgrade() -> None:
    # On SQLite batch mode rebuilds each table (service.db runs it with foreign keys off).
    for table in ("sweeps", "trials"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(op.f(f"ck_{table}_status"), CONDITION)


def downgrade() -> None:
    for table in ("trials", "sweeps"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
