"""study time, referring physician and DICOM Study ID as QIDO-RS matching keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:00:00

The three columns are filled for the studies already stored from the header of each study's
first stored instance, as ingest fills them for new studies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500


def upgrade() -> None:
    # Plain ALTER TABLEs, not batch mode: on SQLite batch mode copies the table, and dropping
    # the old copy would delete every series and instance through their ON DELETE CASCADE.
    op.add_column('study', sa.Column('study_time', sqlmodel.sql.sqltypes.AutoString(length=13), nullable=False, server_default=''))
    op.add_column('study', sa.Column('referring_physician_norm', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default=''))
    op.add_column('study', sa.Column('dicom_study_id', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default=''))
    op.create_index('ix_study_dicom_study_id', 'study', ['dicom_study_id'], unique=False)
    op.create_index('ix_study_referring_physician_norm', 'study', ['referring_physician_norm'], unique=False)
    _fill_from_headers()


def _fill_from_headers() -> None:
    """Each stored study's three values from its first stored instance's header, a batch of
    studies at a time (the headers are a few kilobytes each)."""
    from pacs_app.dicom.matching import study_matching_values

    bind = op.get_bind()
    study = sa.table(
        'study',
        sa.column('id', sa.Integer),
        sa.column('study_time', sa.String),
        sa.column('referring_physician_norm', sa.String),
        sa.column('dicom_study_id', sa.String),
    )
    instance = sa.table(
        'instance',
        sa.column('id', sa.Integer),
        sa.column('study_pk', sa.Integer),
        sa.column('dicom_json', sa.JSON),
    )
    update = (
        study.update()
        .where(study.c.id == sa.bindparam('pk'))
        .values(
            study_time=sa.bindparam('time'),
            referring_physician_norm=sa.bindparam('physician'),
            dicom_study_id=sa.bindparam('dicom_id'),
        )
    )
    after = 0
    while True:
        pks = bind.execute(
            sa.select(study.c.id).where(study.c.id > after).order_by(study.c.id).limit(BATCH)
        ).scalars().all()
        if not pks:
            return
        after = pks[-1]
        first = (
            sa.select(sa.func.min(instance.c.id))
            .where(instance.c.study_pk.in_(pks))
            .group_by(instance.c.study_pk)
        )
        values = []
        for pk, document in bind.execute(
            sa.select(instance.c.study_pk, instance.c.dicom_json).where(instance.c.id.in_(first))
        ):
            time, physician, dicom_id = study_matching_values(document or {})
            if time or physician or dicom_id:
                values.append({'pk': pk, 'time': time, 'physician': physician, 'dicom_id': dicom_id})
        if values:
            bind.execute(update, values)


def downgrade() -> None:
    # Plain ALTER TABLEs (SQLite 3.35 and later drop columns), for the reason above.
    op.drop_index('ix_study_referring_physician_norm', table_name='study')
    op.drop_index('ix_study_dicom_study_id', table_name='study')
    for column in ('dicom_study_id', 'referring_physician_norm', 'study_time'):
        op.drop_column('study', column)
