"""DICOM devices may be allowed to query and retrieve (C-FIND, C-GET)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # every device registered before may send only, as it could
    with op.batch_alter_table("dicom_device", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("may_retrieve", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("dicom_device", schema=None) as batch_op:
        batch_op.drop_column("may_retrieve")
