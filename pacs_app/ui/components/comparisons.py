"""The patient's other studies, as the report and study pages list them."""

from __future__ import annotations

from pacs_app.services.dto import ComparisonStudy


def comparison_row(c: ComparisonStudy) -> dict[str, str]:
    """One of the patient's other studies, as a page lists it."""
    day = (c.study_date or c.received_at.date()).isoformat()
    what = " ".join(v for v in (c.modality, c.body_part) if v) or "Study"
    return {
        "study_id": c.study_id,
        "own_page": "1" if c.own_page else "",
        "when": day,
        "title": (day if c.study_date else f"received {day}")
        + f" · {what}"
        + (f" · {c.description}" if c.description else ""),
        "status": c.status.value,
        "signed": (
            f"Signed by {c.report_signed_by}, {c.report_signed_at:%Y-%m-%d %H:%M} UTC"
            if c.report_signed_at
            else ""
        ),
        "impression": c.impression,
        "findings": c.findings,
        "addenda": "\n\n".join(c.addenda),
        "images": f"{c.num_series} series, {c.num_instances} images",
        "cite": f"Comparison: {what} of {day} (Study {c.study_id}).",
    }
