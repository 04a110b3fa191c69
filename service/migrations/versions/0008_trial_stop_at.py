"""trials.stop_at: the epoch a budget-search probe is planned to stop at (issue 13)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

The budget search trains short probes: trials that stop after ``stop_at`` epochs. The
runner that resumes an interrupted sweep must train such a trial to the same epoch, so the
plan is stored with the row (null: the spec's epochs). Downgrading drops the column; an
interrupted probe then resumes as a full trial.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stop_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("stop_at")
