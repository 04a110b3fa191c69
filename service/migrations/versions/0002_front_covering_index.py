"""Pareto front read path: covering index and sweeps.results_version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = [
    "sweep_id",
    "status",
    "accuracy",
    "sparsity",
    "flops",
    "params",
    "flops_dense",
    "params_dense",
    "id",
]


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index("ix_trials_front", COLUMNS, unique=False)
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("results_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("results_version")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index("ix_trials_front")
