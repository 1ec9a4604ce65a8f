"""Key images keep the VOI LUT function of the window they were marked with

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 00:30:00.000000

A key image's print used the image's own function with the window it was marked with; a
window the reader set as LINEAR_EXACT or SIGMOID (a float map's, of a width under 1) must
print as it was seen. Key images marked before keep none: the image's own, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("window_function", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.drop_column("window_function")
