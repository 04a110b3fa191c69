"""trials.weight_decay: the weight decay each trial trains with (issue 11)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

A sweep's ``training.weight_decay`` may be a list (a grid dimension), so each trial row
records its own value. Existing rows get their sweep's one value from the stored spec;
downgrading drops the column (a sweep with a list of weight decays then reads as having
none: run it on this revision or later).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DEFAULT_WEIGHT_DECAY = 5e-4  # the spec's default as of this revision


def _spec_weight_decay(spec: Any) -> float:
    if isinstance(spec, str):  # a JSON column read back as text
        spec = json.loads(spec)
    value = (spec or {}).get("training", {}).get("weight_decay", DEFAULT_WEIGHT_DECAY)
    return float(value[0] if isinstance(value, list) else value)


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weight_decay", sa.Float(), nullable=True))
    conn = op.get_bind()
    sweeps = sa.table("sweeps", sa.column("id", sa.Integer()), sa.column("spec", sa.JSON()))
    trials = sa.table(
        "trials", sa.column("sweep_id", sa.Integer()), sa.column("weight_decay", sa.Float())
    )
    for sweep_id, spec in conn.execute(sa.select(sweeps.c.id, sweeps.c.spec)).all():
        conn.execute(
            trials.update()
            .where(trials.c.sweep_id == sweep_id)
            .values(weight_decay=_spec_weight_decay(spec))
        )


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("weight_decay")
