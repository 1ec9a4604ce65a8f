"""each user's drawn measurements carry a revision, so two windows' saves merge

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the measurements kept so far are revision 0, as a first save finds nothing kept
    with op.batch_alter_table('drawn_measurements', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('revision', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade() -> None:
    with op.batch_alter_table('drawn_measurements', schema=None) as batch_op:
        batch_op.drop_column('revision')
