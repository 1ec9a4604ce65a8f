"""DICOM devices may be C-MOVE destinations: the port (and address) of their storage SCP

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # no device registered before is a C-MOVE destination until its port is given
    with op.batch_alter_table("dicom_device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("move_port", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("move_address", sa.String(length=45), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("dicom_device", schema=None) as batch_op:
        batch_op.drop_column("move_address")
        batch_op.drop_column("move_port")
