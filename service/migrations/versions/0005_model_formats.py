"""Model files per format: trial_models keyed by (trial_id, format), with an error reason

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Every existing row is a TorchScript file and becomes format ``torchscript``. A format that a
trial could not be exported to is a row with ``error`` and no data. Downgrading keeps the
TorchScript files and drops the other formats (the old schema has one file per trial).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The formats as of this revision, written out (a new format gets its own migration).
FORMATS = ("torchscript", "onnx", "pt2")
FORMAT_CONDITION = "format IN ({})".format(", ".join(f"'{f}'" for f in FORMATS))
DATA_OR_ERROR = "(data IS NULL) <> (error IS NULL)"


def upgrade() -> None:
    # On SQLite batch mode rebuilds the table (service.db runs it with foreign keys off).
    with op.batch_alter_table("trial_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("format", sa.String(length=16), nullable=False, server_default="torchscript")
        )
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.alter_column("size", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_constraint(op.f("pk_trial_models"), type_="primary")
        batch_op.create_primary_key(op.f("pk_trial_models"), ["trial_id", "format"])
        batch_op.create_check_constraint(op.f("ck_trial_models_format"), FORMAT_CONDITION)
        batch_op.create_check_constraint(op.f("ck_trial_models_data_or_error"), DATA_OR_ERROR)
    # The default only filled the existing rows: new rows always name their format.
    with op.batch_alter_table("trial_models", schema=None) as batch_op:
        batch_op.alter_column("format", existing_type=sa.String(length=16), server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM trial_models WHERE format <> 'torchscript' OR data IS NULL")
    with op.batch_alter_table("trial_models", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_trial_models_data_or_error"), type_="check")
        batch_op.drop_constraint(op.f("ck_trial_models_format"), type_="check")
        batch_op.drop_constraint(op.f("pk_trial_models"), type_="primary")
        batch_op.create_primary_key(op.f("pk_trial_models"), ["trial_id"])
        batch_op.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("size", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("error")
        batch_op.drop_column("format")
