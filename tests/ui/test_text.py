from pacs_app.ui.components import audit_detail, count_of, file_size


def test_counts_agree_with_their_number():
    assert count_of(1, "study", "studies") == "1 study"
    assert count_of(0, "study", "studies") == "0 studies"
    assert count_of(25, "study", "studies") == "25 studies"


def test_sizes_read_in_the_unit_that_fits():
    """A 16 KB study read "0.0 MB" on its page."""
    assert file_size(812) == "812 B"
    assert file_size(16 * 1024) == "16 KB"
    assert file_size(int(4.2 * 1024**2)) == "4.2 MB"
    assert file_size(512 * 1024**2) == "512 MB"
    assert file_size(int(1.3 * 1024**3)) == "1.3 GB"
    assert file_size(3000 * 1024**3) == "3000 GB"


def test_an_optional_day_is_none_when_empty_and_named_when_wrong():
    import datetime

    import pytest

    from pacs_app.ui.components import optional_day

    assert optional_day("", "start") is None
    assert optional_day("2026-12-04", "end") == datetime.date(2026, 12, 4)
    with pytest.raises(ValueError, match=r"The end date '2026-13-01' is not a date"):
        optional_day("2026-13-01", "end")


def test_an_audit_detail_reads_as_words_not_as_code():
    assert audit_detail({"instances": 12, "new_study": True}) == "instances: 12 · new study: yes"
    assert audit_detail({"priority_from": "routine", "priority_to": "stat"}) == (
        "priority from: routine · priority to: stat"
    )
    assert audit_detail({"plugins": ["ct-lung", "cxr"], "locked": False}) == (
        "plugins: ct-lung, cxr · locked: no"
    )
    assert audit_detail({"user_ids": [], "reason": None}) == "user ids: none · reason: —"
    assert audit_detail(None) == audit_detail({}) == ""
