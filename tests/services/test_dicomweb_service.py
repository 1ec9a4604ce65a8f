"""The viewer's first image: chosen on the server so that its pixels can come first."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from sqlmodel import col, select

from pacs_app.core.errors import NotFound
from pacs_app.models import Role, Series, Study
from pacs_app.services import dicomweb
from pacs_app.services.ingest import StagedFile, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import TESTDATA, make_ct
from tests.factories import actor_of, make_centre, make_user


@pytest.fixture
def series(session, tmp_path):
    """Five slices uploaded out of order (instance numbers 5, 1, 4, 2, 3)."""
    north = make_centre(session, "NORTH")
    tech = actor_of(make_user(session, Role.TECHNICIAN, centre=north, username="tech"))
    study_uid, series_uid = generate_uid(), generate_uid()
    sops = {}
    files = []
    for n in (5, 1, 4, 2, 3):
        sop = generate_uid()
        sops[n] = sop
        path = make_ct(
            tmp_path / f"{n}.dcm",
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop,
            instance_number=n,
        )
        files.append(StagedFile(path.name, path))
    ingest(session=session, actor=tech, files=files, storage=LocalStorage(tmp_path / "store"))
    return {"tech": tech, "study": study_uid, "series": series_uid, "sops": sops}


def test_the_middle_image_by_instance_number(session, series):
    first = dicomweb.opening_image(
        session=session,
        actor=series["tech"],
        study_uid=series["study"],
        series_uid=series["series"],
    )
    assert first["sop"] == series["sops"][3] and first["frame"] == 0
    assert first["series"] == series["series"]
    assert first["meta"]["00200013"]["Value"] == [3]  # the instance's own DICOM JSON


def test_the_image_the_user_left(session, series):
    left = dicomweb.opening_image(
        session=session,
        actor=series["tech"],
        study_uid=series["study"],
        series_uid=series["series"],
        sop_uid=series["sops"][5],
    )
    assert left["sop"] == series["sops"][5]
    # an instance the series does not have, or a frame it does not have: the middle again
    for sop, frame in ((generate_uid(), 0), (series["sops"][5], 7)):
        other = dicomweb.opening_image(
            session=session,
            actor=series["tech"],
            study_uid=series["study"],
            series_uid=series["series"],
            sop_uid=sop,
            frame=frame,
        )
        assert other["sop"] == series["sops"][3] and other["frame"] == 0


def test_another_centre_sees_nothing(session, series):
    south = make_centre(session, "SOUTH")
    other = actor_of(make_user(session, Role.TECHNICIAN, centre=south, username="other"))
    with pytest.raises(NotFound):
        dicomweb.opening_image(
            session=session, actor=other, study_uid=series["study"], series_uid=series["series"]
        )


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_the_middle_frame_of_a_multiframe_instance(session, tmp_path):
    north = make_centre(session, "MF")
    tech = actor_of(make_user(session, Role.TECHNICIAN, centre=north, username="mftech"))
    path = TESTDATA / "clinical/MR_enhanced_multiframe_10f.dcm"
    result = ingest(
        session=session,
        actor=tech,
        files=[StagedFile(path.name, path)],
        storage=LocalStorage(tmp_path / "store"),
    )
    study = result.studies[0]
    series_uid = session.exec(
        select(Series.series_instance_uid)
        .join(Study, col(Study.id) == Series.study_pk)
        .where(Study.study_id == study.study_id)
    ).one()
    first = dicomweb.opening_image(
        session=session, actor=tech, study_uid=study.study_instance_uid, series_uid=series_uid
    )
    assert first["frame"] == 5  # of 10
