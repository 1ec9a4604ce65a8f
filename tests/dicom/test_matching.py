"""The values kept for matching: names, times and the DICOM Study ID from a header."""

from __future__ import annotations

import pytest

from pacs_app.dicom.dicomjson import attributes
from pacs_app.dicom.matching import normalize_name, study_matching_values, time_bounds


@pytest.mark.parametrize(
    ("value", "bounds"),
    [
        ("101530", ("101530.000000", "101530.999999")),
        ("101530.25", ("101530.250000", "101530.259999")),
        ("101530.123456", ("101530.123456", "101530.123456")),
        ("1015", ("101500.000000", "101559.999999")),
        ("10", ("100000.000000", "105959.999999")),
        ("10:15:30", ("101530.000000", "101530.999999")),  # the old ACR-NEMA form
        (" 235960 ", ("235960.000000", "235960.999999")),  # a leap second
    ],
)
def test_a_time_names_the_instants_it_covers(value, bounds):
    assert time_bounds(value) == bounds


@pytest.mark.parametrize("value", ["", "2460", "1060", "106061", "10.5", "1015.5", "ten", "1"])
def test_what_is_not_a_time_has_no_bounds(value):
    assert time_bounds(value) is None


def test_the_times_sort_as_time_does():
    times = ["0930", "093000.5", "10", "101500", "2359"]
    assert sorted(times, key=lambda t: time_bounds(t)[0]) == times


def test_a_study_keeps_its_time_referring_physician_and_study_id_for_matching():
    header = attributes(
        StudyTime="081500.5", ReferringPhysicianName="Who^Referred^^Dr", StudyID="S-77"
    )
    assert study_matching_values(header) == ("081500.500000", "WHO REFERRED DR", "S-77")
    assert study_matching_values(attributes(StudyTime="late")) == ("", "", "")
    assert study_matching_values({}) == ("", "", "")
    assert normalize_name(" doe^ jane ") == "DOE JANE"
