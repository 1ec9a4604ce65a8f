"""No patient data in logs: an exception is logged as its type and frames, never its message
(a database's DETAIL, pydicom's complaint or a file name can quote patient data)."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy.exc import IntegrityError

from pacs_app.core import logs
from pacs_app.models import Centre

PATIENT = "DOE^JANE"


@pytest.fixture
def printed():
    """What a plain handler with the app's format prints, from any logger."""
    logs.configure()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def _raise_nested():
    try:
        {}[PATIENT.lower()]
    except KeyError as exc:
        raise ValueError(f"could not read the name {PATIENT}") from exc


def test_a_logged_exception_keeps_its_type_and_frames_but_not_its_message(printed):
    try:
        _raise_nested()
    except ValueError:
        logging.getLogger("some.library").exception("reading failed")
    text = printed.getvalue()
    assert "reading failed" in text  # what the code said, in its own words
    assert "builtins.ValueError" in text and "builtins.KeyError" in text
    assert "_raise_nested" in text  # where: the frames
    assert PATIENT not in text
    assert PATIENT.lower() not in text  # nor the cause's (the source line names no value)
    assert logs.LEFT_OUT in text


def test_a_database_error_is_logged_without_the_key_it_quotes(session, printed):
    session.add(Centre(name="First", code=PATIENT))
    session.commit()
    session.add(Centre(name="Second", code=PATIENT))  # the code is taken
    with pytest.raises(IntegrityError) as caught:
        session.commit()
    session.rollback()
    if session.get_bind().dialect.name == "postgresql":
        assert PATIENT in str(caught.value)  # PostgreSQL's DETAIL names the key's value
    logging.getLogger("pacs_app.test").error("a write failed", exc_info=caught.value)
    text = printed.getvalue()
    assert "IntegrityError" in text
    assert PATIENT not in text


def test_an_api_error_answers_500_and_is_logged_by_route_without_its_message(api, printed):
    def broken(study_id: str):
        _raise_nested()

    api.app.add_api_route("/broken/{study_id}", broken)
    response = api.get(f"/broken/{PATIENT}?q={PATIENT}")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    text = printed.getvalue()
    assert "GET /broken/{study_id} failed" in text  # the route, not the path or the query
    assert "builtins.ValueError" in text
    assert PATIENT not in text


def test_a_response_that_fails_midway_is_cut_off_not_ended_cleanly(api, printed):
    """A file download that breaks after its first bytes must not look complete: the server
    is told to abort, by an error that carries no patient data."""
    from fastapi.responses import StreamingResponse

    from pacs_app.api.main import ResponseAborted

    def chunks():
        yield b"DICM"
        _raise_nested()

    api.app.add_api_route("/halfway", lambda: StreamingResponse(chunks()))
    with pytest.raises(ResponseAborted) as caught:
        api.get("/halfway")
    assert PATIENT not in str(caught.value) and caught.value.__suppress_context__
    text = printed.getvalue()
    assert "GET /halfway failed" in text and "builtins.ValueError" in text
    assert PATIENT not in text


def test_an_express_lane_error_answers_500_too(api, printed, monkeypatch):
    """POST /studies bypasses FastAPI's layers (PacsApi): an unexpected failure there is
    answered and logged the same way."""
    from pacs_app.api.routes import studies as studies_routes

    async def broken(request, session):
        _raise_nested()

    monkeypatch.setattr(studies_routes, "upload", broken)
    response = api.post("/studies", files={"files": ("a.dcm", b"x")})
    assert response.status_code == 500
    text = printed.getvalue()
    assert "POST /studies failed" in text
    assert PATIENT not in text


def test_an_ingest_process_failure_answers_as_the_api_does(api, printed, monkeypatch):
    """An unexpected failure in an ingest process (POST /studies' children) is answered like
    one on any other route (plain text, no details) and logged without its message."""
    from pacs_app.api import ingest_worker

    def broken(*args):
        _raise_nested()

    monkeypatch.setattr(ingest_worker, "ingest_upload", broken)
    answer = ingest_worker.handle({"token": "t", "address": None, "files": [], "fields": {}})
    api.app.add_api_route("/broken", lambda: _raise_nested())
    route = api.get("/broken")
    assert answer["status"] == route.status_code == 500
    assert answer["body"] == route.text == "Internal Server Error"
    assert answer["headers"]["content-type"] == route.headers["content-type"]
    text = printed.getvalue()
    assert "an upload failed in an ingest process" in text and "builtins.ValueError" in text
    assert PATIENT not in text


def test_a_page_event_error_shows_a_toast_and_is_logged_without_its_message(printed):
    from reflex.event import EventSpec

    from pacs_app.ui.errors import on_backend_error

    try:
        _raise_nested()
    except ValueError as exc:
        answer = on_backend_error(exc)
    assert isinstance(answer, EventSpec)
    text = printed.getvalue()
    assert "a page event failed" in text and "builtins.ValueError" in text
    assert PATIENT not in text
