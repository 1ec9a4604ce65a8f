"""`GET`/`PUT /studies/{id}/drawn-measurements`: each user's measurements drawn in the viewer,
kept on the server, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from pacs_app.core.errors import InvalidInput
from pacs_app.models import DrawnMeasurements, Role
from pacs_app.services import drawn, studies
from pacs_app.storage import get_storage
from tests.dicom_factory import make_series
from tests.factories import PASSWORD, actor_of, make_centre, make_user

LENGTH = {"kind": "length", "p": [10, 12.5, 60, 12.5], "line": "Length 25.0 mm (image 3)"}
ROI = {
    "kind": "roi",
    "p": [5, 5, 25, 15],
    "stats": {"n": 150, "sum": 6000, "sq": 250000, "min": None, "max": 55},
    "line": "ROI mean 40.0 HU",
    "sent": True,
}
ANGLE = {"kind": "angle", "p": [0, 0, 10, 10, 20, 0], "line": "Angle 90.0°"}


def _auth(api, username):
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def study(api, session, tmp_path):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    people = {
        "tech": make_user(session, Role.TECHNICIAN, centre=north, username="tech"),
        "doctor": make_user(session, Role.RADIOLOGIST, centre=north, username="doctor"),
        "other": make_user(session, Role.TECHNICIAN, centre=south, username="other"),
        "boss": make_user(session, Role.ADMIN, username="boss"),
    }
    paths = make_series(tmp_path / "s", 2)
    h = _auth(api, "tech")
    r = api.post("/studies", headers=h, files=[("files", (p.name, p.read_bytes())) for p in paths])
    assert r.status_code == 201, r.text
    return {"id": r.json()["study_id"], "people": people}


def test_each_user_keeps_their_own_measurements(api, session, study):
    url = f"/studies/{study['id']}/drawn-measurements"
    doctor, tech = _auth(api, "doctor"), _auth(api, "tech")
    assert api.get(url, headers=doctor).json() == {"images": {}}
    images = {"1.2.3.4:0": [LENGTH, ROI], "1.2.3.4:2": [ANGLE], "1.2.3.5:0": []}
    r = api.put(url, headers=doctor, json={"images": images})
    assert r.status_code == 200, r.text
    kept = r.json()["images"]
    assert list(kept) == ["1.2.3.4:0", "1.2.3.4:2"]  # an image without any is not kept
    assert kept["1.2.3.4:0"][0] == {
        **LENGTH,
        "p": [10.0, 12.5, 60.0, 12.5],
        "stats": None,
        "sent": False,
    }
    assert kept["1.2.3.4:0"][1]["stats"] == ROI["stats"] and kept["1.2.3.4:0"][1]["sent"] is True
    assert api.get(url, headers=doctor).json() == {"images": kept}
    # another user of the study has their own (none yet), and keeps theirs apart
    assert api.get(url, headers=tech).json() == {"images": {}}
    assert api.put(url, headers=tech, json={"images": {"1.2.3.4:1": [ANGLE]}}).status_code == 200
    assert api.get(url, headers=doctor).json() == {"images": kept}
    # a save replaces what was kept: the measurements a user deletes are gone
    r = api.put(url, headers=doctor, json={"images": {"1.2.3.4:2": [ANGLE]}})
    assert list(api.get(url, headers=doctor).json()["images"]) == ["1.2.3.4:2"]
    assert session.exec(select(func.count()).select_from(DrawnMeasurements)).one() == 2


def test_measurements_are_refused_by_name_and_kept_only_where_the_study_may_be_seen(
    api, session, study
):
    url = f"/studies/{study['id']}/drawn-measurements"
    doctor = _auth(api, "doctor")
    api.put(url, headers=doctor, json={"images": {"1.2.3.4:0": [LENGTH]}})
    for images, message in (
        ({"slice 3": [LENGTH]}, "does not name an image"),
        ({"1.2.3.4:0": LENGTH}, "must be a list"),
        ({"1.2.3.4:0": [{**LENGTH, "kind": "circle"}]}, "'circle' on image 1.2.3.4:0 is not a"),
        ({"1.2.3.4:0": [{**LENGTH, "p": [1, 2, 3]}]}, "A length on image 1.2.3.4:0 takes 4"),
        ({"1.2.3.4:0": [{**ANGLE, "p": [0, 0, 1, 1, 2, "x"]}]}, "takes 6 finite coordinates"),
        ({"1.2.3.4:0": [{**LENGTH, "line": "x" * 301}]}, "300 or fewer"),
        ({"1.2.3.4:0": [{**ROI, "stats": {"mean": "high"}}]}, "must be named numbers"),
        ({"1.2.3.4:0": [LENGTH] * (drawn.MAX_MEASUREMENTS + 1)}, "At most 2000"),
    ):
        r = api.put(url, headers=doctor, json={"images": images})
        assert r.status_code == 422 and message in r.json()["detail"], (images, r.text)
    # what was kept before stays
    assert api.get(url, headers=doctor).json()["images"]["1.2.3.4:0"][0]["kind"] == "length"
    # another centre's user finds no such study; nobody signed in gets 401
    other = _auth(api, "other")
    assert api.get(url, headers=other).status_code == 404
    r = api.put(url, headers=other, json={"images": {}})
    assert r.status_code == 404
    assert api.get(url).status_code == 401
    # NaN cannot come through JSON, but the domain refuses it from any caller
    with pytest.raises(InvalidInput, match="finite coordinates"):
        drawn.save_drawn(
            session=session,
            actor=actor_of(study["people"]["doctor"]),
            study_id=study["id"],
            images={"1.2.3.4:0": [{**LENGTH, "p": [0, 0, float("nan"), 1]}]},
        )


def test_deleting_the_study_deletes_its_measurements(api, session, study):
    api.put(
        f"/studies/{study['id']}/drawn-measurements",
        headers=_auth(api, "doctor"),
        json={"images": {"1.2.3.4:0": [LENGTH]}},
    )
    studies.delete_study(
        session=session,
        actor=actor_of(study["people"]["boss"]),
        study_id=study["id"],
        confirm=study["id"],
        storage=get_storage(),
    )
    session.expire_all()
    assert session.exec(select(func.count()).select_from(DrawnMeasurements)).one() == 0


def test_a_first_save_that_meets_another_tabs_updates_it(api, session, study, monkeypatch):
    """Two tabs' first saves at once: the one that comes second finds no row when it looks,
    then meets the other's on the unique key, and updates it instead of failing."""
    doctor = actor_of(study["people"]["doctor"])
    drawn.save_drawn(
        session=session, actor=doctor, study_id=study["id"], images={"1.2.3.4:0": [LENGTH]}
    )
    looks = []
    real_row = drawn._row

    def row_not_seen_at_first(*args):
        looks.append(args)
        return None if len(looks) == 1 else real_row(*args)

    monkeypatch.setattr(drawn, "_row", row_not_seen_at_first)
    kept = drawn.save_drawn(
        session=session, actor=doctor, study_id=study["id"], images={"1.2.3.4:1": [ANGLE]}
    )
    assert list(kept) == ["1.2.3.4:1"] and len(looks) == 2
    monkeypatch.undo()
    session.expire_all()
    assert list(drawn.drawn(session=session, actor=doctor, study_id=study["id"])) == ["1.2.3.4:1"]
    assert session.exec(select(func.count()).select_from(DrawnMeasurements)).one() == 1
