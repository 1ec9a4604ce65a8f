"""JSON columns go through orjson (and json for what orjson refuses); pipelined writes."""

from __future__ import annotations

from pacs_app.core.db import _json_dumps
from pacs_app.models import AuditEvent


def test_json_columns_round_trip_unicode_and_integers_beyond_64_bits(session):
    detail = {"name": "Ü 漢字", "big": 2**70, "nested": [{"x": 1.5}, None, True]}
    event = AuditEvent(action="test.json", detail=detail)
    session.add(event)
    session.commit()
    session.expire_all()
    assert session.get(AuditEvent, event.id).detail == detail


def test_the_serializer_falls_back_for_what_orjson_refuses():
    assert _json_dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'  # orjson: compact, UTF-8
    assert _json_dumps({1: "key not a string"}) == '{"1": "key not a string"}'
    assert _json_dumps(2**70) == str(2**70)


def test_a_pipelined_write_that_fails_raises_sqlalchemys_error_at_the_end(session):
    """On PostgreSQL the writes inside go out without waiting (psycopg's pipeline); a unique
    violation still arrives as an IntegrityError, and the transaction can be rolled back."""
    import pytest
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from pacs_app.core import db

    event = AuditEvent(action="test.pipeline")
    session.add(event)
    session.commit()
    taken, at = event.id, event.at  # read before: nothing inside may wait for an answer
    table = AuditEvent.__table__
    with pytest.raises(IntegrityError), db.pipelined(session):
        session.connection().execute(
            insert(table).inline(), {"id": taken, "action": "dup", "outcome": "success", "at": at}
        )
    session.rollback()
    with db.pipelined(session):
        session.connection().execute(
            insert(table).inline(), {"action": "after", "outcome": "success", "at": at}
        )
    session.commit()


def test_a_database_error_does_not_carry_the_statements_values(session):
    """Errors are logged with their message; a statement's values are patient data."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from pacs_app.models import Centre

    session.add(Centre(name="First clinic", code="PHI1"))
    session.commit()
    session.add(Centre(name="DOE^JANE clinic", code="PHI1"))  # the code is taken
    with pytest.raises(IntegrityError) as caught:
        session.commit()
    session.rollback()
    assert "DOE^JANE" not in str(caught.value)
    assert "hidden" in str(caught.value)  # SQLAlchemy says that it left them out
