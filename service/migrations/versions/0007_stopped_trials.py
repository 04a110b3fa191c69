"""Trial status 'stopped' and trials.stopped_epoch: early-stopped trials (issue 13)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

An early-stopped trial is finished and usable: its measures and model files are those of
the epoch it stopped at, recorded in the new nullable column ``trials.stopped_epoch``. The
CHECK constraint on ``trials.status`` gains ``'stopped'``.

Downgrading turns every ``stopped`` trial into ``completed`` (the status the older schema
has for a trial with a result), then restores the old CHECK constraint and drops
``stopped_epoch``; the stop epoch stays in the trial's ``metrics`` JSON (its
``stopped_epoch`` key), so no row and no measure is lost.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The statuses before and as of this revision, written out: a migration must not change
# meaning when service.vocabulary grows (see 0003).
OLD_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
NEW_STATUSES = (*OLD_STATUSES, "stopped")


def _condition(statuses: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{s}'" for s in statuses))


def upgrade() -> None:
    # On SQLite batch mode rebuilds the table once (service.db runs it with foreign keys
    # off, so the trials' epochs and models are kept).
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_trials_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_trials_status"), _condition(NEW_STATUSES))
        batch_op.add_column(sa.Column("stopped_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    trials = sa.table("trials", sa.column("status", sa.String(16)))
    op.get_bind().execute(
        trials.update().where(trials.c.status == "stopped").values(status="completed")
    )
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_trials_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_trials_status"), _condition(OLD_STATUSES))
        batch_op.drop_column("stopped_epoch")
