"""Instances indexed by study and time received: whether a study is still receiving

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:00:00.000000

The AI queue asks, at each claim and at each completion, whether a study received an
instance since a given time (pacs_app.services.ai.received_since). The index on the study
alone made that read every instance row of the study; this one answers it from the index,
and serves what the old one served (its first column), so an insert maintains no more
indexes than before.
"""

import contextlib
from collections.abc import Iterator, Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with _unlocked() as concurrently:
        op.create_index(
            "ix_instance_study_received",
            "instance",
            ["study_pk", "received_at"],
            postgresql_concurrently=concurrently,
        )
        op.drop_index(
            "ix_instance_study_pk", table_name="instance", postgresql_concurrently=concurrently
        )


def downgrade() -> None:
    with _unlocked() as concurrently:
        op.create_index(
            "ix_instance_study_pk", "instance", ["study_pk"], postgresql_concurrently=concurrently
        )
        op.drop_index(
            "ix_instance_study_received",
            table_name="instance",
            postgresql_concurrently=concurrently,
        )


@contextlib.contextmanager
def _unlocked() -> Iterator[bool]:
    """On PostgreSQL, indexes built and dropped without locking the table's writes (outside
    the migration's transaction, which is committed first): instance is the largest table,
    and another backend already running on the database goes on storing uploads meanwhile.
    Yields whether they are."""
    if op.get_bind().dialect.name != "postgresql":
        yield False
        return
    with op.get_context().autocommit_block():
        yield True
