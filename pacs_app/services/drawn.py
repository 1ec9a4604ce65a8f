"""Measurements drawn in the viewer, kept on the server for each user and study.

The viewer keeps a study's measurements (lengths, elliptical ROIs with their values, angles)
per image; it saves them here as they change, so that a radiologist who closes the tab, opens
the study in another browser or comes back the next day finds them where they were drawn.
They are the user's own: another user of the study sees none of them. Whoever may see the
study may keep measurements on it.

Example::

    save_drawn(session=s, actor=doctor, study_id="AB12CD34", images={
        "1.2.3.4:0": [{"kind": "length", "p": [10, 10, 60, 10], "line": "Length 12.5 mm"}],
    })
    drawn(session=s, actor=doctor, study_id="AB12CD34")["1.2.3.4:0"][0]["kind"]  # "length"
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from pacs_app.core.errors import InvalidInput
from pacs_app.models import DrawnMeasurements
from pacs_app.models.base import utcnow
from pacs_app.services import workflow
from pacs_app.services.authz import Actor

# the coordinates each kind takes: a line's two ends, an ellipse's bounding corners, an
# angle's first end, vertex and second end (image pixels)
KINDS = {"length": 4, "roi": 4, "angle": 6}
MAX_MEASUREMENTS = 2000  # in all, over the study's images
MAX_LINE = 300  # the line a measurement gives the report
_IMAGE = re.compile(r"[0-9][0-9.]{0,63}:[0-9]{1,6}")  # SOP Instance UID:frame


def drawn(*, session: Session, actor: Actor, study_id: str) -> dict[str, list[dict[str, Any]]]:
    """The actor's measurements on the study (``{}`` when none); :class:`NotFound` for a
    study the actor may not see."""
    study = workflow.load_visible(session, actor, study_id)
    row = _row(session, study.id, actor.user_id)
    return row.images if row else {}


def save_drawn(
    *, session: Session, actor: Actor, study_id: str, images: Any
) -> dict[str, list[dict[str, Any]]]:
    """Keep ``images`` as the actor's measurements on the study, in place of those kept
    before, and return them as kept. Raises :class:`InvalidInput` naming what is wrong (and
    keeps nothing of it), :class:`NotFound` for a study the actor may not see."""
    study = workflow.load_visible(session, actor, study_id)
    kept = _checked(images)
    try:
        _put(session, study.id, actor.user_id, kept)
    except IntegrityError:
        # another tab's first save came between the look and the insert: update its row
        session.rollback()
        _put(session, study.id, actor.user_id, kept)
    return kept


def _put(session: Session, study_pk: int | None, user_id: int, images: dict) -> None:
    row = _row(session, study_pk, user_id)
    if row is None:
        row = DrawnMeasurements(study_pk=study_pk, user_id=user_id)
    row.images, row.updated_at = images, utcnow()
    session.add(row)
    session.commit()


def _row(session: Session, study_pk: int | None, user_id: int) -> DrawnMeasurements | None:
    return session.exec(
        select(DrawnMeasurements).where(
            DrawnMeasurements.study_pk == study_pk, DrawnMeasurements.user_id == user_id
        )
    ).first()


def _checked(images: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(images, dict):
        raise InvalidInput("The measurements must be an object of images to their lists.")
    kept: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for image, items in images.items():
        if not isinstance(image, str) or not _IMAGE.fullmatch(image):
            raise InvalidInput(f"{image!r} does not name an image (SOP Instance UID:frame).")
        if not isinstance(items, list):
            raise InvalidInput(f"The measurements of image {image} must be a list.")
        count += len(items)
        if count > MAX_MEASUREMENTS:
            raise InvalidInput(f"At most {MAX_MEASUREMENTS} measurements are kept on a study.")
        if items:
            kept[image] = [_measurement(image, item) for item in items]
    return kept


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _measurement(image: str, item: Any) -> dict[str, Any]:
    """One measurement as kept: its kind, coordinates, an ROI's sums, its report line and
    whether it was sent to the report; anything else is left out."""
    if not isinstance(item, dict):
        raise InvalidInput(f"A measurement of image {image} must be an object.")
    kind = item.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{kind!r} on image {image} is not a measurement ({', '.join(KINDS)}).")
    points = item.get("p")
    if not (isinstance(points, list) and len(points) == KINDS[kind] and all(map(_number, points))):
        raise InvalidInput(f"A {kind} on image {image} takes {KINDS[kind]} finite coordinates.")
    line = item.get("line") or ""
    if not isinstance(line, str) or len(line) > MAX_LINE:
        raise InvalidInput(f"A {kind}'s line on image {image} must be text of {MAX_LINE} or fewer.")
    stats = item.get("stats")
    if stats is not None and not (
        isinstance(stats, dict)
        and len(stats) <= 8
        and all(isinstance(k, str) and (v is None or _number(v)) for k, v in stats.items())
    ):
        raise InvalidInput(f"An ROI's values on image {image} must be named numbers.")
    return {
        "kind": kind,
        "p": [float(v) for v in points],
        "stats": stats,
        "line": line,
        "sent": bool(item.get("sent")),
    }


__all__ = ["KINDS", "drawn", "save_drawn"]
