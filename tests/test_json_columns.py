"""JSON columns go through orjson, and through the json module for what orjson refuses."""

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
