"""Structured reports (PS3.3 C.17.3, SR Document Content) read into a flat content tree.

A modality's SR (dose reports, measurements, CAD findings, key image notes) is part of the
study a radiologist reads; this turns its nested Content Sequence into a list of items in
document order, each with its depth, relationship to its parent, value type, concept name and
its value as text, so that a viewer can show it without knowing DICOM. Items are numbered as
PS3.3 C.17.3.2.5 numbers them for by-reference relationships (the root is ``1``, its second
child ``1.2``), as DCMTK's ``dsrdump`` prints them.

Reading is lenient: an item that cannot be read is listed with what is known of it and its
problem is said in :attr:`StructuredReport.problems`, never silently dropped, and a document
that breaks a rule (DCMTK refuses such files) still shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.uid import UID

#: Every SR storage SOP class (including Key Object Selection) is under this root.
SR_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.88."
MAX_DEPTH = 64
MAX_ITEMS = 20_000
MAX_POINTS = 8

_RELATIONSHIPS = {
    "CONTAINS": "contains",
    "HAS OBS CONTEXT": "has observation context",
    "HAS ACQ CONTEXT": "has acquisition context",
    "HAS CONCEPT MOD": "has concept modifier",
    "HAS PROPERTIES": "has properties",
    "INFERRED FROM": "inferred from",
    "SELECTED FROM": "selected from",
}


@dataclass(frozen=True)
class ContentItem:
    position: str
    depth: int
    relationship: str
    value_type: str
    concept: str
    concept_code: str
    value: str
    #: the coded value's or the units' code, e.g. ``"T-A7010, SRT"``
    code: str = ""
    #: ``"1.3.2"``: this item only points at that one (by-reference relationship)
    refers_to: str = ""
    #: the SOP Instance UID an IMAGE, COMPOSITE or WAVEFORM item refers to, and its frames
    sop_instance_uid: str = ""
    frames: tuple[int, ...] = ()
    observed: str = ""
    #: the presentation state an IMAGE item shows its image with (SOP Instance UID), if any
    presentation_uid: str = ""


@dataclass
class StructuredReport:
    document: str
    title: str
    completion: str
    completion_description: str
    verification: str
    preliminary: str
    content_datetime: str
    verifying_observers: list[str]
    items: list[ContentItem]
    problems: list[str] = field(default_factory=list)


def is_structured_report(ds: pydicom.Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")).startswith(SR_CLASS_ROOT)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(_text(v) for v in value)
    return str(value).strip()


def _first(ds: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    seq = ds.get(keyword)
    if not seq:
        return None
    try:
        return seq[0]
    except (TypeError, IndexError):
        return None


def _code(item: pydicom.Dataset | None) -> tuple[str, str]:
    """A code's meaning and ``"value, scheme"``."""
    if item is None:
        return "", ""
    value = _text(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue"))
    scheme = _text(item.get("CodingSchemeDesignator"))
    return _text(item.get("CodeMeaning")), ", ".join(p for p in (value, scheme) if p)


def _datetime(text: str) -> str:
    """``20001206120000.123+0100`` to ``2000-12-06 12:00:00.123 +0100``; other text as it is."""
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d+)?([+-]\d{4})?", text)
    if not m:
        return text
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    out = "-".join(p for p in (year, month, day) if p)
    if hour:
        out += " " + _time(hour + (minute or "") + (second or "") + (fraction or ""))
    return out + (" " + zone if zone else "")


def _date(text: str) -> str:
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    return f"{m[1]}-{m[2]}-{m[3]}" if m else text


def _time(text: str) -> str:
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(\.\d+)?", text)
    if not m:
        return text
    return ":".join(p for p in m.groups()[:3] if p) + (m[4] or "")


def _person(value: Any) -> str:
    return " ".join(p for p in str(value or "").split("^") if p).strip()


def _points(data: Any, per_point: int) -> str:
    try:
        numbers = [float(v) for v in (data or [])]
    except (TypeError, ValueError):
        return "(unreadable coordinates)"
    points = [numbers[i : i + per_point] for i in range(0, len(numbers), per_point)]
    shown = ", ".join(
        "(" + ", ".join(f"{v:g}" for v in point) + ")" for point in points[:MAX_POINTS]
    )
    if len(points) > MAX_POINTS:
        shown += f", … ({len(points)} points)"
    return shown


def _sop_class_name(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name if name and name != uid else (uid or "unknown class")


def _value(item: pydicom.Dataset, value_type: str) -> dict[str, Any]:
    """The item's value as text, and what else the viewer needs of it."""
    if value_type == "TEXT":
        return {"value": _text(item.get("TextValue"))}
    if value_type == "CODE":
        meaning, code = _code(_first(item, "ConceptCodeSequence"))
        return {"value": meaning, "code": code}
    if value_type == "NUM":
        measured = _first(item, "MeasuredValueSequence")
        if measured is None:
            qualifier, _ = _code(_first(item, "NumericValueQualifierCodeSequence"))
            return {"value": f"no value ({qualifier})" if qualifier else "no value"}
        number = _text(measured.get("NumericValue"))
        units_item = _first(measured, "MeasurementUnitsCodeSequence")
        units_meaning, units_code = _code(units_item)
        units = _text(units_item.get("CodeValue")) if units_item is not None else ""
        # UCUM's "1" is "no units"
        shown = number if units in ("", "1") else f"{number} {units}"
        return {"value": shown, "code": units_meaning + (f" ({units_code})" if units_code else "")}
    if value_type == "DATETIME":
        return {"value": _datetime(_text(item.get("DateTime")))}
    if value_type == "DATE":
        return {"value": _date(_text(item.get("Date")))}
    if value_type == "TIME":
        return {"value": _time(_text(item.get("Time")))}
    if value_type == "UIDREF":
        return {"value": _text(item.get("UID"))}
    if value_type == "PNAME":
        return {"value": _person(item.get("PersonName"))}
    if value_type == "CONTAINER":
        return {"value": "", "code": _text(item.get("ContinuityOfContent")).lower()}
    if value_type in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        ref = _first(item, "ReferencedSOPSequence")
        if ref is None:
            raise ValueError("it refers to no object (no Referenced SOP Sequence)")
        sop = _text(ref.get("ReferencedSOPInstanceUID"))
        frames = tuple(int(f) for f in (_as_list(ref.get("ReferencedFrameNumber"))))
        shown = _sop_class_name(_text(ref.get("ReferencedSOPClassUID")))
        if frames:
            shown += ", frame" + ("s " if len(frames) > 1 else " ") + ", ".join(map(str, frames))
        presentation = _first(ref, "ReferencedSOPSequence")
        if presentation is not None:
            shown += " (with presentation state)"
        return {
            "value": shown,
            "code": sop,
            "sop_instance_uid": sop,
            "frames": frames,
            "presentation_uid": _text(presentation.get("ReferencedSOPInstanceUID"))
            if presentation is not None
            else "",
        }
    if value_type == "SCOORD":
        return {
            "value": f"{_text(item.get('GraphicType'))} {_points(item.get('GraphicData'), 2)}",
            "code": "column, row",
        }
    if value_type == "SCOORD3D":
        return {
            "value": f"{_text(item.get('GraphicType'))} {_points(item.get('GraphicData'), 3)}",
            "code": "frame of reference " + _text(item.get("ReferencedFrameOfReferenceUID")),
        }
    if value_type == "TCOORD":
        kind = _text(item.get("TemporalRangeType"))
        for keyword, label in (
            ("ReferencedSamplePositions", "samples"),
            ("ReferencedTimeOffsets", "seconds"),
            ("ReferencedDateTime", "at"),
        ):
            if keyword in item:
                values = _as_list(item.get(keyword))
                return {"value": f"{kind} {label} " + ", ".join(_text(v) for v in values)}
        return {"value": kind}
    raise ValueError(f"its value type {value_type or '(none)'} is not one SR defines")


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return list(value)
    return [value]


def read(ds: pydicom.Dataset) -> StructuredReport:
    """The document's header and its content tree, depth first in document order."""
    if not is_structured_report(ds):
        raise ValueError("This object is not a structured report.")
    problems: list[str] = []
    items: list[ContentItem] = []

    def walk(item: pydicom.Dataset, position: str, depth: int, relationship: str) -> None:
        if len(items) == MAX_ITEMS:
            if not problems or not problems[-1].startswith("The document has more"):
                problems.append(f"The document has more than {MAX_ITEMS} items; the rest is cut.")
            return
        rel = _RELATIONSHIPS.get(relationship, relationship.lower())
        reference = item.get("ReferencedContentItemIdentifier")
        if reference is not None and "ValueType" not in item:
            target = ".".join(str(int(v)) for v in _as_list(reference))
            items.append(
                ContentItem(
                    position, depth, rel, "", "", "", f"see item {target}", refers_to=target
                )
            )
            return
        value_type = _text(item.get("ValueType")).upper()
        concept, concept_code = _code(_first(item, "ConceptNameCodeSequence"))
        try:
            value = _value(item, value_type)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            problems.append(
                f"Item {position} ({value_type or 'no value type'}) is unreadable: {exc}."
            )
            value = {"value": "(unreadable)"}
        items.append(
            ContentItem(
                position,
                depth,
                rel,
                value_type,
                concept,
                concept_code,
                value.get("value", ""),
                code=value.get("code", ""),
                sop_instance_uid=value.get("sop_instance_uid", ""),
                frames=value.get("frames", ()),
                observed=_datetime(_text(item.get("ObservationDateTime"))),
                presentation_uid=value.get("presentation_uid", ""),
            )
        )
        children = item.get("ContentSequence") or []
        if children and depth + 1 > MAX_DEPTH:
            problems.append(
                f"Item {position} nests deeper than {MAX_DEPTH} levels; what is below it is cut."
            )
            return
        for i, child in enumerate(children, start=1):
            walk(child, f"{position}.{i}", depth + 1, _text(child.get("RelationshipType")).upper())

    walk(ds, "1", 0, "")
    root = items[0] if items else None
    observers = []
    for observer in ds.get("VerifyingObserverSequence") or []:
        name = _person(observer.get("VerifyingObserverName"))
        organization = _text(observer.get("VerifyingOrganization"))
        when = _datetime(_text(observer.get("VerificationDateTime")))
        observers.append(
            ", ".join(p for p in (name, organization) if p) + (f" ({when})" if when else "")
        )
    content_dt = _date(_text(ds.get("ContentDate")))
    if ds.get("ContentTime"):
        content_dt += " " + _time(_text(ds.get("ContentTime")))
    return StructuredReport(
        document=_sop_class_name(_text(ds.get("SOPClassUID"))),
        title=root.concept if root is not None else "",
        completion=_text(ds.get("CompletionFlag")),
        completion_description=_text(ds.get("CompletionFlagDescription")),
        verification=_text(ds.get("VerificationFlag")),
        preliminary=_text(ds.get("PreliminaryFlag")),
        content_datetime=content_dt.strip(),
        verifying_observers=observers,
        items=items,
        problems=problems,
    )


#: Concepts of a measurement group (TID 1501, 1410, 1411) that say what a measurement is of,
#: and the one that names it where those are absent.
_SUBJECT_CONCEPTS = ("Finding", "Finding Site")
_TRACKING_CONCEPT = "Tracking Identifier"


def measurements(report: StructuredReport) -> list[str]:
    """The report's numeric measurements as lines of text, in document order, for a
    radiologist's report: ``"Spinal cord, Cervico-thoracic spine: Area of defined region
    1.7 cm2"``. What a measurement is of comes from its group's Finding, Finding Site or
    (without those) Tracking Identifier, else from the section holding it; a NUM item with no
    value (PS3.3 C.18.1: Numeric Value Qualifier only) is left out."""
    items = report.items
    by_position = {item.position: item for item in items}
    children: dict[str, list[ContentItem]] = {}
    for item in items:
        parent = item.position.rpartition(".")[0]
        children.setdefault(parent, []).append(item)
    lines = []
    for item in items:
        if item.value_type != "NUM" or not item.value or item.refers_to:
            continue
        parent = item.position.rpartition(".")[0]
        siblings = children.get(parent, [])
        subject = [s.value for s in siblings if s.concept in _SUBJECT_CONCEPTS and s.value]
        if not subject:
            subject = [s.value for s in siblings if s.concept == _TRACKING_CONCEPT and s.value]
        if not subject:
            section = by_position.get(parent)
            if section is not None and section.value_type == "CONTAINER" and parent != "1":
                subject = [section.concept] if section.concept else []
        name = item.concept or "Measurement"
        lines.append(
            f"{', '.join(subject)}: {name} {item.value}" if subject else f"{name}: {item.value}"
        )
    return lines
