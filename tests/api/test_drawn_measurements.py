"""`GET`/`PUT /studies/{id}/drawn-measurements`: each user's measurements drawn in the viewer,
kept on the server, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from pacs_app.core.errors import InvalidInput
from pacs_app.models import DrawnMeasurements, Role, Study
from pacs_app.services import drawn, studies
from pacs_app.storage import get_storage
from tests.dicom_factory import make_series
from tests.factories import PASSWORD, actor_of, make_centre, make_user

LENGTH = {
    "id": "a1",
    "kind": "length",
    "p": [10, 12.5, 60, 12.5],
    "line": "Length 25.0 mm (image 3)",
}
ROI = {
    "id": "b2",
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
    assert api.get(url, headers=doctor).json() == {"images": {}, "revision": 0}
    images = {"1.2.3.4:0": [LENGTH, ROI], "1.2.3.4:2": [ANGLE], "1.2.3.5:0": []}
    r = api.put(url, headers=doctor, json={"images": images})
    assert r.status_code == 200, r.text
    kept = r.json()["images"]
    assert r.json()["revision"] == 1
    assert list(kept) == ["1.2.3.4:0", "1.2.3.4:2"]  # an image without any is not kept
    assert kept["1.2.3.4:0"][0] == {
        **LENGTH,
        "id": "a1",
        "p": [10.0, 12.5, 60.0, 12.5],
        "stats": None,
        "sent": False,
    }
    assert kept["1.2.3.4:0"][1]["stats"] == ROI["stats"] and kept["1.2.3.4:0"][1]["sent"] is True
    # a measurement sent without an id is given one
    assert kept["1.2.3.4:2"][0]["id"] not in ("", "a1", "b2")
    assert api.get(url, headers=doctor).json() == {"images": kept, "revision": 1}
    # another user of the study has their own (none yet), and keeps theirs apart
    assert api.get(url, headers=tech).json() == {"images": {}, "revision": 0}
    assert api.put(url, headers=tech, json={"images": {"1.2.3.4:1": [ANGLE]}}).status_code == 200
    assert api.get(url, headers=doctor).json() == {"images": kept, "revision": 1}
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
        ({"1.2.3.4:0": [ANGLE] * (drawn.MAX_MEASUREMENTS + 1)}, "At most 2000"),
        ({"1.2.3.4:0": [{**LENGTH, "id": "a b"}]}, "id on image 1.2.3.4:0 must be 1 to 40"),
        ({"1.2.3.4:0": [{**LENGTH, "id": 7}]}, "id on image 1.2.3.4:0 must be 1 to 40"),
        ({"1.2.3.4:0": [LENGTH], "1.2.3.4:1": [{**ROI, "id": "a1"}]}, "Two measurements have"),
    ):
        r = api.put(url, headers=doctor, json={"images": images})
        assert r.status_code == 422 and message in r.json()["detail"], (images, r.text)
    r = api.put(url, headers=doctor, json={"images": {}, "revision": -1})
    assert r.status_code == 422 and "whole number" in r.json()["detail"]
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


def test_a_save_from_an_older_revision_is_refused_with_what_is_kept(api, session, study):
    """Two windows of one user on one study: each save names the revision it was made from;
    one made before the other window's last save is refused (409) with what is kept, and
    keeps nothing of itself."""
    url = f"/studies/{study['id']}/drawn-measurements"
    doctor = _auth(api, "doctor")
    # both windows open with nothing kept (revision 0); the first one's save is kept
    first = api.put(url, headers=doctor, json={"images": {"1.2.3.4:0": [LENGTH]}, "revision": 0})
    assert first.status_code == 200 and first.json()["revision"] == 1
    # the second one's, from revision 0 too, is refused with the first one's
    r = api.put(url, headers=doctor, json={"images": {"1.2.3.4:1": [ANGLE]}, "revision": 0})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "stale_measurements" and "another window" in r.json()["detail"]
    assert r.json()["images"] == first.json()["images"] and r.json()["revision"] == 1
    # merged (as the viewer does) and saved from revision 1: kept, as revision 2
    merged = {**r.json()["images"], "1.2.3.4:1": [{**ANGLE, "id": "c3"}]}
    both = api.put(url, headers=doctor, json={"images": merged, "revision": 1})
    assert both.status_code == 200 and both.json()["revision"] == 2
    ids = [m["id"] for ms in both.json()["images"].values() for m in ms]
    assert ids == ["a1", "c3"]
    # the first window, still at revision 1, deletes its length: refused, nothing lost
    r = api.put(url, headers=doctor, json={"images": {}, "revision": 1})
    assert r.status_code == 409 and r.json()["revision"] == 2
    assert api.get(url, headers=doctor).json() == both.json()
    # a save without a revision (a caller that does not merge) is kept over whatever is kept
    r = api.put(url, headers=doctor, json={"images": {"1.2.3.4:0": [LENGTH]}})
    assert r.status_code == 200 and r.json()["revision"] == 3
    # a revision the server never gave is stale too
    assert api.put(url, headers=doctor, json={"images": {}, "revision": 9}).status_code == 409


@pytest.mark.parametrize("revision", [None, 0])
def test_a_first_save_that_meets_another_windows_first_save(
    api, session, study, monkeypatch, revision
):
    """Two windows' first saves at once: the one that comes second finds no row to update,
    then meets the other's on the unique key. Without a revision it keeps its own over it;
    from revision 0 it is told what the other kept."""
    doctor = actor_of(study["people"]["doctor"])
    drawn.save_drawn(
        session=session, actor=doctor, study_id=study["id"], images={"1.2.3.4:0": [LENGTH]}
    )
    updates = []
    real_update = drawn._update

    def row_not_seen_at_first(*args):
        updates.append(args)
        return None if len(updates) == 1 else real_update(*args)

    monkeypatch.setattr(drawn, "_update", row_not_seen_at_first)
    save = {"session": session, "actor": doctor, "study_id": study["id"]}
    if revision is None:
        kept = drawn.save_drawn(**save, images={"1.2.3.4:1": [ANGLE]})
        assert list(kept.images) == ["1.2.3.4:1"] and kept.revision == 2 and len(updates) == 2
    else:
        with pytest.raises(drawn.Stale) as stale:
            drawn.save_drawn(**save, images={"1.2.3.4:1": [ANGLE]}, revision=revision)
        assert list(stale.value.current.images) == ["1.2.3.4:0"]
        assert stale.value.current.revision == 1
    monkeypatch.undo()
    session.expire_all()
    assert session.exec(select(func.count()).select_from(DrawnMeasurements)).one() == 1
    expected = ["1.2.3.4:1"] if revision is None else ["1.2.3.4:0"]
    assert list(drawn.drawn(session=session, actor=doctor, study_id=study["id"]).images) == expected


def test_measurements_kept_before_they_had_ids_are_named_by_their_place(api, session, study):
    """Rows kept before measurements had ids (revision 0, from the migration) read with
    names that stay the same on every read, so that two windows merge them alike."""
    doctor = study["people"]["doctor"]
    pk = session.exec(select(Study.id).where(Study.study_id == study["id"])).one()
    old = {"kind": "length", "p": [1.0, 2.0, 3.0, 4.0], "stats": None, "line": "", "sent": False}
    session.add(
        DrawnMeasurements(
            study_pk=pk, user_id=doctor.id, images={"1.2.3.4:0": [old, old], "1.2.3.4:5": [old]}
        )
    )
    session.commit()
    url = f"/studies/{study['id']}/drawn-measurements"
    h = _auth(api, "doctor")
    read = api.get(url, headers=h).json()
    assert read["revision"] == 0
    assert [m["id"] for ms in read["images"].values() for m in ms] == ["m0", "m1", "m2"]
    assert api.get(url, headers=h).json() == read
    r = api.put(url, headers=h, json={"images": read["images"], "revision": 0})
    assert r.status_code == 200 and r.json() == {"images": read["images"], "revision": 1}
