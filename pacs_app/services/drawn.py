"""Measurements drawn in the viewer, kept on the server for each user and study.

The viewer keeps a study's measurements (lengths, elliptical ROIs with their values, angles)
per image; it saves them here as they change, so that a radiologist who closes the tab, opens
the study in another browser or comes back the next day finds them where they were drawn.
They are the user's own: another user of the study sees none of them. Whoever may see the
study may keep measurements on it.

One user may have the study open twice at once (the report page's viewer on one screen, a
full viewer on the other). Each save names the revision it was made from; a save made from
an older one than the kept is refused with :class:`Stale`, which carries what is kept, so
that the viewer merges its own changes into them (by each measurement's ``id``) and saves
again: a measurement drawn in one window is never lost to a save from the other.

Example::

    kept = save_drawn(session=s, actor=doctor, study_id="AB12CD34", revision=0, images={
        "1.2.3.4:0": [{"id": "a1", "kind": "length", "p": [10, 10, 60, 10], "line": "12.5 mm"}],
    })
    kept.revision  # 1
    drawn(session=s, actor=doctor, study_id="AB12CD34").images["1.2.3.4:0"][0]["kind"]  # "length"
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from pacs_app.core.errors import Conflict, InvalidInput
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
_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # a measurement's, given by the viewer that drew it


@dataclass(frozen=True)
class Drawn:
    """A user's measurements on a study as kept, and the revision they are (0: none kept
    yet; each save adds one)."""

    images: dict[str, list[dict[str, Any]]]
    revision: int


class Stale(Conflict):
    """A save made from an older revision than the one kept: ``current`` is what is kept,
    into which the saver merges its own changes before saving again."""

    code = "stale_measurements"

    def __init__(self, current: Drawn):
        super().__init__(
            "Your measurements on this study were changed in another window since this one "
            f"last saved (revision {current.revision} is kept): merge them and save again."
        )
        self.current = current


def drawn(*, session: Session, actor: Actor, study_id: str) -> Drawn:
    """The actor's measurements on the study (none, revision 0, when nothing is kept);
    :class:`NotFound` for a study the actor may not see."""
    study = workflow.load_visible(session, actor, study_id)
    return _kept(session, study.id, actor.user_id)


def save_drawn(
    *, session: Session, actor: Actor, study_id: str, images: Any, revision: int | None = None
) -> Drawn:
    """Keep ``images`` as the actor's measurements on the study, in place of those kept
    before, and return them as kept with their new revision.

    ``revision`` is the one the caller's measurements were made from: when another is kept
    (another window saved since), nothing is kept and :class:`Stale` carries the kept ones.
    ``None`` keeps them whatever is kept (a caller that does not merge). A measurement
    without an ``id`` is given one. Raises :class:`InvalidInput` naming what is wrong (and
    keeps nothing of it), :class:`NotFound` for a study the actor may not see."""
    study = workflow.load_visible(session, actor, study_id)
    if revision is not None and (
        isinstance(revision, bool) or not isinstance(revision, int) or revision < 0
    ):
        raise InvalidInput("The revision must be a whole number, 0 or more.")
    kept = _checked(images)
    saved = _update(session, study.id, actor.user_id, kept, revision)
    if saved is None and not revision:
        # nothing kept yet, as far as this caller knows: the first save
        try:
            session.add(
                DrawnMeasurements(study_pk=study.id, user_id=actor.user_id, images=kept, revision=1)
            )
            session.flush()
            saved = 1
        except IntegrityError:
            # another window's first save came between: keep over it, or say it is there
            session.rollback()
            if revision is None:
                return save_drawn(session=session, actor=actor, study_id=study_id, images=kept)
    if saved is None:
        session.rollback()
        raise Stale(_kept(session, study.id, actor.user_id))
    session.commit()
    return Drawn(kept, saved)


def _update(
    session: Session, study_pk: int | None, user_id: int, images: dict, revision: int | None
) -> int | None:
    """Replace the kept measurements, if kept at ``revision`` (``None``: at any); their new
    revision, or ``None`` when no row matched. One statement, so that of two windows saving
    from one revision only one can match."""
    table = DrawnMeasurements.__table__
    matches = [table.c.study_pk == study_pk, table.c.user_id == user_id]
    if revision is not None:
        matches.append(table.c.revision == revision)
    return session.execute(
        update(table)
        .where(*matches)
        .values(images=images, revision=table.c.revision + 1, updated_at=utcnow())
        .returning(table.c.revision)
    ).scalar_one_or_none()


def _kept(session: Session, study_pk: int | None, user_id: int) -> Drawn:
    row = session.exec(
        select(DrawnMeasurements).where(
            DrawnMeasurements.study_pk == study_pk, DrawnMeasurements.user_id == user_id
        )
    ).first()
    if row is None:
        return Drawn({}, 0)
    # measurements kept before they had ids are named by their place, the same on every read
    # (a window that saves them keeps those names)
    images, n = {}, 0
    for image, items in row.images.items():
        images[image] = []
        for item in items:
            images[image].append(item if item.get("id") else {"id": f"m{n}", **item})
            n += 1
    return Drawn(images, row.revision)


def _checked(images: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(images, dict):
        raise InvalidInput("The measurements must be an object of images to their lists.")
    kept: dict[str, list[dict[str, Any]]] = {}
    count, ids = 0, set()
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
            for item in kept[image]:
                if item["id"] in ids:
                    raise InvalidInput(f"Two measurements have the id {item['id']!r}.")
                ids.add(item["id"])
    return kept


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _measurement(image: str, item: Any) -> dict[str, Any]:
    """One measurement as kept: its id, kind, coordinates, an ROI's sums, its report line
    and whether it was sent to the report; anything else is left out."""
    if not isinstance(item, dict):
        raise InvalidInput(f"A measurement of image {image} must be an object.")
    mid = item.get("id")
    if mid is None:
        mid = secrets.token_hex(8)
    elif not isinstance(mid, str) or not _ID.fullmatch(mid):
        raise InvalidInput(
            f"A measurement's id on image {image} must be 1 to 40 letters, digits, - or _."
        )
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
        "id": mid,
        "kind": kind,
        "p": [float(v) for v in points],
        "stats": stats,
        "line": line,
        "sent": bool(item.get("sent")),
    }


def marks_of(session: Session, study_pk: int | None, user_id: int) -> dict[str, list[dict]]:
    """A user's measurements on a study as marks to draw on its images, by image ("SOP
    Instance UID:frame", the frame 0-based): each one's ``kind``, points ``p`` and
    ``label``, the words drawn beside it (its report line without where it is: "Length
    12.5 mm")."""
    return {
        image: [
            {"kind": item["kind"], "p": list(item["p"]), "label": _WHERE.sub("", item["line"])}
            for item in items
        ]
        for image, items in _kept(session, study_pk, user_id).images.items()
    }


_WHERE = re.compile(r"\s*\([^()]*\)\s*$")  # "(series 1, image 13)" at a line's end


__all__ = ["KINDS", "Drawn", "Stale", "drawn", "marks_of", "save_drawn"]
