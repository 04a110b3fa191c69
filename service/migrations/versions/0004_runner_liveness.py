"""Runner heartbeats and the pack-checkpoint resume index (issue 9)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# BIGINT ids on PostgreSQL, INTEGER (the rowid) on SQLite, as in 0001.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runners")),
    )
    op.create_table(
        "pack_checkpoints",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("sweep_id", Id, nullable=False),
        sa.Column("pack_key", sa.String(length=64), nullable=False),
        sa.Column("trial_ids", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_pack_checkpoints_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_checkpoints")),
        sa.UniqueConstraint(
            "sweep_id", "pack_key", name=op.f("uq_pack_checkpoints_sweep_id_pack_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("pack_checkpoints")
    op.drop_table("runners")
