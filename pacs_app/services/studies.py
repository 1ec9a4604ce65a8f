"""Study lists, study detail, original-file download and deletion, scoped by authorization.

Lists use keyset pagination (a cursor holds the last row's sort value and id), so every page
costs the same however deep it is; the total count comes with each page.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, or_, tuple_
from sqlmodel import Session, col, select

from pacs_app.core.errors import InvalidInput, InvalidTransition, NotFound
from pacs_app.dicom.matching import normalize_name
from pacs_app.models import (
    AIFinding,
    AuditEvent,
    Centre,
    Instance,
    Priority,
    Series,
    Study,
    StudyStatus,
    User,
)
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import (
    Action,
    Actor,
    Comparison,
    can,
    require,
    study_visibility,
)
from pacs_app.services.dto import (
    AuditEventPublic,
    Difference,
    InstancePublic,
    SeriesPublic,
    StudyDetail,
    StudyPage,
    StudyPublic,
)
from pacs_app.storage import Storage

MAX_LIMIT = 200
# What the study page's history lists: how the study moved, not every look at it.
HISTORY_ACTIONS = [
    a
    for a in AuditAction
    if a.value.startswith(("study.", "report."))
    and a
    not in (
        AuditAction.STUDY_VIEWED,
        AuditAction.REPORT_DOWNLOADED,
        AuditAction.STUDY_DELETED,
    )
]
MAX_DETAIL_INSTANCES = 2000
# Uploads of one study by one account from one address, each within this of the last, are
# one line of its history: a modality sends a series by C-STORE one instance at a time, and
# each instance is an upload (audited as such).
UPLOADS_FOLDED_WITHIN = timedelta(minutes=15)


class SortKey(StrEnum):
    RECEIVED = "received_at"
    PATIENT = "patient_name"
    MODALITY = "modality"
    PRIORITY = "priority"
    STATUS = "status"
    STUDY_ID = "study_id"


SORT_COLUMNS = {
    SortKey.RECEIVED: Study.received_at,
    SortKey.PATIENT: Study.patient_name_norm,
    SortKey.MODALITY: Study.modality,
    SortKey.PRIORITY: Study.priority_rank,
    SortKey.STATUS: Study.status,
    SortKey.STUDY_ID: Study.study_id,
}


@dataclass(frozen=True)
class StudyFilters:
    status: StudyStatus | None = None
    priority: Priority | None = None
    modality: str | None = None
    centre_id: int | None = None
    received_from: date | None = None
    received_to: date | None = None
    patient_id: str | None = None  # exact
    q: str | None = None  # free text: patient name, patient ID or Study ID


def _differences(study: Study) -> list[Difference]:
    return [
        Difference(field=field, shown=str(getattr(study, field, "")), header=str(header))
        for field, header in (study.header_values or {}).items()
    ]


def study_public(
    session: Session,
    study: Study,
    *,
    centre: Centre | Row | None = None,
    uploader: str | None = None,
) -> StudyPublic:
    centre = centre or session.get(Centre, study.centre_id)
    if uploader is None and study.uploaded_by_id:
        user = session.get(User, study.uploaded_by_id)
        uploader = user.username if user else None
    return StudyPublic(
        **{
            f: getattr(study, f)
            for f in StudyPublic.model_fields
            if f not in {"centre_code", "uploaded_by", "differences"}
        },
        centre_code=centre.code if centre else "",
        uploaded_by=uploader,
        differences=_differences(study),
    )


def _filter_clauses(actor: Actor, filters: StudyFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [study_visibility(actor)]
    if filters.status:
        clauses.append(Study.status == StudyStatus(filters.status))
    if filters.priority:
        clauses.append(Study.priority_rank == Priority(filters.priority).rank)
    if filters.modality:
        clauses.append(Study.modality == filters.modality.strip().upper())
    if filters.centre_id is not None:
        clauses.append(Study.centre_id == filters.centre_id)
    if filters.received_from:
        clauses.append(
            Study.received_at >= datetime.combine(filters.received_from, time.min, tzinfo=UTC)
        )
    if filters.received_to:
        clauses.append(
            Study.received_at <= datetime.combine(filters.received_to, time.max, tzinfo=UTC)
        )
    if (
        filters.received_from
        and filters.received_to
        and (filters.received_from > filters.received_to)
    ):
        raise InvalidInput("The date range ends before it starts.")
    if filters.patient_id:
        clauses.append(Study.patient_id == filters.patient_id.strip())
    if filters.q and filters.q.strip():
        text = filters.q.strip()
        like = "%" + normalize_name(text).replace("%", r"\%").replace("_", r"\_") + "%"
        clauses.append(
            or_(
                Study.study_id == text.upper(),
                Study.patient_id == text,
                col(Study.patient_name_norm).like(like, escape="\\"),
            )
        )
    return clauses


def _encode_cursor(sort: SortKey, value: Any, row_id: int, direction: str) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    elif isinstance(value, StrEnum):
        value = value.value
    raw = json.dumps({"s": sort.value, "v": value, "i": row_id, "d": direction})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: SortKey) -> tuple[Any, int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["s"] != sort.value or data["d"] not in ("next", "prev"):
            raise ValueError
        value = data["v"]
        if sort is SortKey.RECEIVED:
            value = datetime.fromisoformat(value)
        elif sort is SortKey.PRIORITY:
            value = int(value)
        else:
            value = str(value)
        return value, int(data["i"]), data["d"]
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            "The page cursor is invalid or belongs to another sort order; "
            "start from the first page."
        ) from exc


def list_studies(
    *,
    session: Session,
    actor: Actor,
    filters: StudyFilters | None = None,
    sort: SortKey | str = SortKey.RECEIVED,
    descending: bool = True,
    cursor: str | None = None,
    limit: int = 25,
) -> StudyPage:
    """The studies the actor may see, filtered and sorted, one page at a time.

    ``cursor`` is a ``next_cursor``/``prev_cursor`` of a previous page (same sort).
    """
    filters = filters or StudyFilters()
    try:
        sort = SortKey(sort)
    except ValueError as exc:
        raise InvalidInput(
            f"Unknown sort {sort!r}: use one of {', '.join(k.value for k in SortKey)}."
        ) from exc
    limit = min(max(1, limit), MAX_LIMIT)
    clauses = _filter_clauses(actor, filters)
    sort_col = SORT_COLUMNS[sort]

    going_back = False
    page_clauses = list(clauses)
    if cursor:
        value, row_id, direction = _decode_cursor(cursor, sort)
        going_back = direction == "prev"
        forward_desc = descending != going_back
        key = tuple_(sort_col, Study.id)
        page_clauses.append(
            key < tuple_(value, row_id) if forward_desc else key > tuple_(value, row_id)
        )
    order_desc = descending != going_back
    order = (
        [col(sort_col).desc(), col(Study.id).desc()]
        if order_desc
        else [col(sort_col).asc(), col(Study.id).asc()]
    )
    rows = list(
        session.exec(select(Study).where(and_(*page_clauses)).order_by(*order).limit(limit + 1))
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if going_back:
        rows.reverse()

    total = session.exec(select(func.count()).select_from(Study).where(and_(*clauses))).one()

    centres = (
        {
            c.id: c
            for c in session.exec(
                select(Centre).where(col(Centre.id).in_({r.centre_id for r in rows}))
            )
        }
        if rows
        else {}
    )
    uploader_ids = {r.uploaded_by_id for r in rows if r.uploaded_by_id}
    uploaders = (
        {u.id: u.username for u in session.exec(select(User).where(col(User.id).in_(uploader_ids)))}
        if uploader_ids
        else {}
    )
    items = [
        study_public(
            session,
            r,
            centre=centres.get(r.centre_id),
            uploader=uploaders.get(r.uploaded_by_id, ""),
        )
        for r in rows
    ]

    def cursor_of(study: Study, direction: str) -> str:
        return _encode_cursor(sort, getattr(study, sort_col.key), study.id, direction)

    next_cursor = prev_cursor = None
    if rows:
        if (has_more and not going_back) or (going_back and cursor):
            next_cursor = cursor_of(rows[-1], "next")
        if (cursor and not going_back) or (going_back and has_more):
            prev_cursor = cursor_of(rows[0], "prev")
    return StudyPage(
        items=items, total=total, limit=limit, next_cursor=next_cursor, prev_cursor=prev_cursor
    )


def _by_study_id(session: Session, study_id: str) -> Study | None:
    return session.exec(
        select(Study).where(Study.study_id == (study_id or "").strip().upper())
    ).first()


def named_study_id(value: str | None) -> str | None:
    """A Study ID as a request names it (``?for=``, the study being read; ``?study_id=``, the
    study asked of), as compared and audited: upper case, at most 16 characters (a Study ID
    has 8); ``None`` for none."""
    return (value or "").strip().upper()[:16] or None


def may_see(session: Session, actor: Actor, study: Study, comparing: str | None = None) -> bool:
    """Whether the actor may see ``study``: as itself, or, with ``comparing`` (the Study ID
    of the study being read), as another study of that study's patient."""
    if can(actor, Action.VIEW_STUDY, study):
        return True
    current = _by_study_id(session, comparing) if comparing else None
    return current is not None and can(
        actor, Action.VIEW_FOR_COMPARISON, Comparison(other=study, current=current)
    )


def _visible_study(
    session: Session, actor: Actor, study_id: str, comparing: str | None = None
) -> Study:
    study = _by_study_id(session, study_id)
    if study is None or not may_see(session, actor, study, comparing):
        raise NotFound(f"No study {study_id!r}.")
    return study


def folded_history(events: list[AuditEvent]) -> list[AuditEventPublic]:
    """A study's history as its page lists it: a run of uploads (``study.uploaded``) by one
    account from one address, each within :data:`UPLOADS_FOLDED_WITHIN` of the one before
    and none with conflicts, is one entry, at the first, that says how many uploads it holds
    (``uploads``), how many instances they stored and when the last came (``until``). The
    audit trail itself keeps every upload."""
    folded: list[AuditEventPublic] = []
    last_at: datetime | None = None
    for event in events:
        entry = AuditEventPublic.of(event)
        previous = folded[-1] if folded else None
        if (
            previous is not None
            and _foldable(previous)
            and _foldable(entry)
            and (previous.actor_id, previous.address) == (entry.actor_id, entry.address)
            and entry.at - last_at <= UPLOADS_FOLDED_WITHIN
        ):
            detail = dict(previous.detail)
            detail["instances"] = detail.get("instances", 0) + entry.detail.get("instances", 0)
            detail["uploads"] = detail.get("uploads", 1) + 1
            detail["until"] = entry.at.strftime("%Y-%m-%d %H:%M:%S")
            folded[-1] = previous.model_copy(update={"detail": detail})
        else:
            folded.append(entry)
        last_at = entry.at
    return folded


def _foldable(entry: AuditEventPublic) -> bool:
    return (
        entry.action == AuditAction.STUDY_UPLOADED
        and isinstance(entry.detail, dict)
        and "conflicts" not in entry.detail
    )


def get_study(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    address: str | None = None,
    comparing: str | None = None,
) -> StudyDetail:
    """A study the actor may see, with its series and history; 404 outside the actor's scope.
    With ``comparing``, a study the actor may see beside that one (:func:`may_see`).

    Opening a study is audited (who looked at which patient's study).
    """
    study = _visible_study(session, actor, study_id, comparing)
    series = session.exec(
        select(Series)
        .where(Series.study_pk == study.id)
        .order_by(col(Series.series_number), col(Series.id))
    ).all()
    history = session.exec(
        select(AuditEvent)
        .where(AuditEvent.resource_type == "study", AuditEvent.resource_id == study.study_id)
        .where(col(AuditEvent.action).in_([a.value for a in HISTORY_ACTIONS]))
        .order_by(col(AuditEvent.at))
    ).all()
    series_uid = {s.id: s.series_instance_uid for s in series}
    # the columns the list needs, not the stored header JSON of every instance
    columns = [f for f in InstancePublic.model_fields if f != "series_instance_uid"]
    instances = session.exec(
        select(Instance.series_pk, *[getattr(Instance, f) for f in columns])
        .where(Instance.study_pk == study.id)
        .order_by(col(Instance.series_pk), col(Instance.instance_number), col(Instance.number))
        .limit(MAX_DETAIL_INSTANCES)
    ).all()
    audit.record_study(
        session,
        action=AuditAction.STUDY_VIEWED,
        actor=actor,
        study=study,
        address=address,
        detail={"compared_with": comparing.strip().upper()} if comparing else None,
    )
    session.commit()
    base = study_public(session, study)
    return StudyDetail(
        **base.model_dump(),
        series=[SeriesPublic.model_validate(s, from_attributes=True) for s in series],
        history=folded_history(history),
        instances=[
            InstancePublic(
                series_instance_uid=series_uid.get(row[0], ""),
                **dict(zip(columns, row[1:], strict=True)),
            )
            for row in instances
        ],
    )


@dataclass(frozen=True)
class InstanceFile:
    path: Path | None
    storage_key: str
    filename: str
    size: int


def instance_file(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    number: int,
    storage: Storage,
    address: str | None = None,
) -> InstanceFile:
    """The original file of instance ``number`` (1-based, as in ``instance_NNN.dcm``)."""
    study = _visible_study(session, actor, study_id)
    instance = session.exec(
        select(Instance).where(Instance.study_pk == study.id, Instance.number == number)
    ).first()
    if instance is None:
        raise NotFound(f"Study {study.study_id} has no instance {number}.")
    audit.record_study(
        session,
        action=AuditAction.INSTANCE_DOWNLOADED,
        actor=actor,
        study=study,
        address=address,
        detail={"instance": number},
    )
    session.commit()
    return InstanceFile(
        path=storage.local_path(instance.storage_key),
        storage_key=instance.storage_key,
        filename=f"{study.study_id}_instance_{number:03d}.dcm",
        size=instance.size_bytes,
    )


def delete_study(
    *,
    session: Session,
    actor: Actor,
    study_id: str,
    confirm: str,
    storage: Storage,
    address: str | None = None,
) -> None:
    """Delete a study, its rows and its files (administrators only).

    ``confirm`` must repeat the Study ID: a guard against deleting the wrong study.
    """
    study = _visible_study(session, actor, study_id)
    require(actor, Action.DELETE_STUDY, study)
    if study.status in (StudyStatus.VERIFIED, StudyStatus.DELIVERED):
        raise InvalidTransition(
            f"Study {study.study_id} has a signed report, which is part of the medical record "
            "and is not deleted."
        )
    if (confirm or "").strip().upper() != study.study_id:
        raise InvalidInput(f"To delete study {study.study_id}, confirm by repeating its Study ID.")
    keys = list(session.exec(select(Instance.storage_key).where(Instance.study_pk == study.id)))
    keys += [  # AI evidence (overlay images)
        evidence["overlay"]
        for evidence in session.exec(
            select(AIFinding.evidence).where(AIFinding.study_pk == study.id)
        )
        if evidence and evidence.get("overlay")
    ]
    session.exec(delete(Instance).where(col(Instance.study_pk) == study.id))
    session.exec(delete(Series).where(col(Series.study_pk) == study.id))
    audit.record_study(
        session,
        action=AuditAction.STUDY_DELETED,
        actor=actor,
        study=study,
        address=address,
        detail={"instances": len(keys)},
    )
    session.delete(study)
    session.commit()
    # Files go after the rows are gone: a crash in between leaves orphan files, never rows
    # that point at missing files.
    for key in keys:
        storage.delete(key)
