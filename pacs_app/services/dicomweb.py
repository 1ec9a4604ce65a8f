"""WADO-RS retrieval (PS3.18 §10.4) over the index and the store, authorized like every read.

Metadata comes from the database (the DICOM JSON kept at ingest), never from files; frames and
rendered images decode one frame of the stored file. Instances go out in a transfer syntax the
client accepts (:mod:`pacs_app.dicom.transcode`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from sqlalchemy import String, cast, func
from sqlmodel import Session, col, select

from pacs_app.core.errors import Conflict, InvalidInput, NotAcceptable, NotFound
from pacs_app.dicom import bulk, gsps, pixels, sr, transcode, waveform
from pacs_app.models import Instance, Series, Study
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction
from pacs_app.services.authz import Actor
from pacs_app.services.studies import may_see
from pacs_app.storage import Storage

log = logging.getLogger(__name__)

CACHE_FILES = 24
CACHE_MAX_BYTES = 64 * 1024 * 1024
# A stored document with a value left out for want of its URI (see :func:`metadata`).
_LEFT_OUT = re.compile(r'"BulkDataURI":\s*""')


def visible_study(
    session: Session,
    actor: Actor,
    study_uid: str,
    comparing: str | None,
    study_id: str | None = None,
) -> Study:
    """The study of ``study_uid`` the actor may see (see :func:`studies.may_see`); one of
    another centre with the same UID is not it.

    Two centres can hold a study of the same StudyInstanceUID (sent to both, or a modality
    that repeats UIDs), and an admin or a tele-radiologist may see both: ``study_id`` (the
    Study ID, which the viewer always sends) says which. Raises :class:`NotFound`, and
    :class:`Conflict` where the actor may see several and ``study_id`` names none: one is
    never picked for them, as its images could be another patient's.
    """
    query = select(Study).where(Study.study_instance_uid == study_uid).order_by(col(Study.id))
    if study_id is not None:
        query = query.where(Study.study_id == study_id)
    seen = [s for s in session.exec(query) if may_see(session, actor, s, comparing)]
    if not seen:
        raise NotFound(f"No study {study_uid} that you may see.")
    return _the_one(seen, study_uid)


def _the_one(seen: list[Study], study_uid: str) -> Study:
    """The one study of ``seen``; :class:`Conflict` naming them where there are several."""
    if len(seen) > 1:
        raise Conflict(
            f"{len(seen)} studies you may see have the StudyInstanceUID {study_uid} (Study "
            f"IDs {', '.join(s.study_id for s in seen)}, of different centres): name one "
            "with ?study_id= in the request."
        )
    return seen[0]


def series_of(session: Session, study: Study, series_uid: str) -> Series:
    """The series ``series_uid`` of ``study``; raises :class:`NotFound`."""
    series = session.exec(
        select(Series).where(Series.study_pk == study.id, Series.series_instance_uid == series_uid)
    ).first()
    if series is None:
        raise NotFound(f"The study has no series {series_uid}.")
    return series


def metadata(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    address: str | None = None,
    comparing: str | None = None,
    base_url: str = "",
    study_id: str | None = None,
) -> str:
    """DICOM JSON of every instance of a study (or of one series, or one instance), as the
    text of a JSON array: the stored documents are joined, not parsed and serialized again,
    but for those with values left out, which get their ``BulkDataURI`` under ``base_url``
    (the DICOMweb root as the client reached it; see :func:`bulk_data`).
    ``comparing``: the Study ID of the study being read, where this one is shown beside it;
    ``study_id``: this study's, where several have its UID (see :func:`visible_study`)."""
    study = visible_study(session, actor, study_uid, comparing, study_id)
    query = (
        select(
            cast(Instance.dicom_json, String), Series.series_instance_uid, Instance.sop_instance_uid
        )
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(Instance.study_pk == study.id)
    )
    if series_uid is not None:
        query = query.where(Instance.series_pk == series_of(session, study, series_uid).id)
    if sop_uid is not None:
        query = query.where(Instance.sop_instance_uid == sop_uid)
    rows = session.exec(
        query.order_by(col(Instance.series_pk), col(Instance.instance_number), col(Instance.number))
    ).all()
    if not rows:
        raise NotFound("No such instance.")
    _record_view(session, actor, study, address, comparing)
    documents = []
    for text, series, sop in rows:
        if text and _LEFT_OUT.search(text):
            doc = json.loads(text)
            where = instance_url(base_url, study.study_instance_uid, series, sop)
            bulk.fill_uris(doc, where + "/bulk")
            text = json.dumps(doc)
        documents.append(text or "{}")
    return "[" + ",".join(documents) + "]"


def instance_url(base_url: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    """An instance's Retrieve URL under the DICOMweb root ``base_url``."""
    return f"{base_url}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def bulk_data(found: StoredInstance, path: str) -> bytes:
    """The value at ``path`` (a tag, or tags and item numbers down sequences: the end of a
    ``BulkDataURI``) of a stored instance, in little endian byte order.

    Raises :class:`InvalidInput` where the path names no bulk data of the instance."""
    try:
        return bulk.value(dataset(found), bulk.parse_path(path))
    except bulk.BadPath as exc:
        raise InvalidInput(str(exc)) from exc


def _record_view(
    session, actor, study, address, comparing, action=AuditAction.STUDY_VIEWED, **detail
) -> None:
    """Audit a look at the study through DICOMweb (and commit)."""
    audit.record_study(
        session,
        action=action,
        actor=actor,
        study=study,
        address=address,
        detail={
            "via": "dicomweb",
            **detail,
            **({"compared_with": comparing} if comparing else {}),
        },
    )
    session.commit()


#: Instances in the order a study is read: by series number (none last), then image number.
SERIES_ORDER = (col(Series.series_number).asc().nulls_last(), col(Series.id))
INSTANCE_ORDER = (
    *SERIES_ORDER,
    col(Instance.instance_number).asc().nulls_last(),
    col(Instance.number),
)


@dataclass(frozen=True)
class StoredFile:
    storage_key: str
    transfer_syntax: str  # as stored; "" for a file without meta information
    sop_class_uid: str = ""


def stored_files(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    series_uid: str | None = None,
    address: str | None = None,
    comparing: str | None = None,
    study_id: str | None = None,
    sop_uids: Sequence[str] | None = None,
    via: str = "dicomweb",
    destination: str | None = None,
) -> list[StoredFile]:
    """The stored files of a study's instances (or of one of its series, or of the
    instances ``sop_uids`` of that series), in series and instance order, for a retrieval of
    all of them (WADO-RS, or ``via`` another service, sent to the AE title ``destination``
    where it is not the requestor); the retrieval is audited."""
    study = visible_study(session, actor, study_uid, comparing, study_id)
    query = (
        select(Instance.storage_key, Instance.transfer_syntax_uid, Instance.sop_class_uid)
        .join(Series, col(Series.id) == Instance.series_pk)
        .where(Instance.study_pk == study.id)
    )
    if series_uid is not None:
        query = query.where(Instance.series_pk == series_of(session, study, series_uid).id)
    if sop_uids is not None:
        query = query.where(col(Instance.sop_instance_uid).in_(list(sop_uids)))
    files = [StoredFile(*row) for row in session.exec(query.order_by(*INSTANCE_ORDER))]
    detail = {"series_instance_uid": series_uid} if series_uid else {}
    if destination:
        detail["destination"] = destination
    _record_view(session, actor, study, address, comparing, via=via, retrieved=len(files), **detail)
    return files


@dataclass(frozen=True)
class Outgoing:
    """One stored file of a retrieval and what it goes out as: ``convert_to`` a transfer
    syntax, or None to send it as stored."""

    file: StoredFile
    convert_to: str | None


def outgoing(files: list[StoredFile], accepted: list[str]) -> tuple[list[Outgoing], int]:
    """What each of ``files`` goes out as for a client that accepts the transfer syntaxes
    ``accepted``, and how many go as stored though it does not accept their syntax.

    Nothing of a study is left out: an instance that cannot be converted (big endian, or no
    acceptable syntax is one this server makes) goes as stored, its part naming its syntax.
    """
    items, unconverted = [], 0
    for file in files:
        try:
            items.append(Outgoing(file, transcode.target(file.transfer_syntax, accepted)))
        except transcode.CannotConvert:
            items.append(Outgoing(file, None))
            unconverted += 1
    return items, unconverted


def file_body(item: Outgoing, storage: Storage, chunk: int) -> tuple[str, Iterator[bytes]]:
    """The transfer syntax ``item`` goes out in and its bytes, read ``chunk`` at a time where
    it goes as stored. A conversion that fails (pixel data no decoder reads) sends the
    stored file instead, under its own syntax, rather than leave the instance out."""
    if item.convert_to is not None:
        try:
            with storage.open(item.file.storage_key) as source:
                return item.convert_to, iter([transcode.convert(source, item.convert_to)])
        except transcode.CannotConvert as exc:
            log.warning("sending %s as stored: %s", item.file.storage_key, exc.reason)

    def stored() -> Iterator[bytes]:
        with storage.open(item.file.storage_key) as source:
            while data := source.read(chunk):
                yield data

    return item.file.transfer_syntax, stored()


def retrieve_instance(
    *,
    session: Session,
    actor: Actor,
    found: StoredInstance,
    sop_uid: str,
    accepted: list[str],
    address: str | None = None,
    comparing: str | None = None,
) -> tuple[str, bytes]:
    """:func:`instance_file` for the actor, audited as a download of the patient's data, as
    the REST download of an original file is (frames, renderings and bulk data are parts of
    a study whose metadata, audited, came first)."""
    answer = instance_file(found, accepted)
    study = session.get(Study, found.study_pk)
    _record_view(
        session,
        actor,
        study,
        address,
        comparing,
        action=AuditAction.INSTANCE_DOWNLOADED,
        sop_instance_uid=sop_uid,
    )
    return answer


def instance_file(found: StoredInstance, accepted: list[str]) -> tuple[str, bytes]:
    """One instance in a transfer syntax the client accepts: that syntax and the file.

    Raises :class:`NotAcceptable` where it cannot be made (the reason names the syntaxes).
    """
    path = found.existing_path()
    try:
        to = transcode.target(found.transfer_syntax, accepted)
        if to is None:
            return found.transfer_syntax, path.read_bytes()
        return to, transcode.convert(path, to)
    except transcode.CannotConvert as exc:
        raise NotAcceptable(
            f"This instance cannot be sent in a transfer syntax you accept: {exc.reason}."
        ) from exc


def opening_image(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    frame: int = 0,
    comparing: str | None = None,
    study_id: str | None = None,
) -> dict[str, Any] | None:
    """The image the viewer shows first in a series, with its instance's DICOM JSON, so that
    the viewer can fetch and show its pixels while the whole series' metadata is still on its
    way: frame ``frame`` of ``sop_uid`` (the view the user left) when the series has it, else
    the middle image in the viewer's order (instance number, then frame). ``None`` for a
    series without instances."""
    study = visible_study(session, actor, study_uid, comparing, study_id)
    series = series_of(session, study, series_uid)
    rows = session.exec(
        select(Instance.id, Instance.sop_instance_uid, Instance.number_of_frames)
        .where(Instance.series_pk == series.id)
        .order_by(func.coalesce(Instance.instance_number, 0), col(Instance.number))
    ).all()
    chosen = next(
        ((pk, sop, frame) for pk, sop, frames in rows if sop == sop_uid and 0 <= frame < frames),
        None,
    ) or _middle_image(rows)
    if chosen is None:
        return None
    pk, sop, index = chosen
    meta = session.exec(select(cast(Instance.dicom_json, String)).where(Instance.id == pk)).one()
    return {"series": series_uid, "sop": sop, "frame": index, "meta": json.loads(meta or "{}")}


def _middle_image(rows) -> tuple[int, str, int] | None:
    """(instance key, SOP Instance UID, frame) of the middle image of ``rows`` (key, SOP,
    number of frames, in viewing order), counting every frame of multi-frame instances."""
    remaining = sum(max(1, frames or 1) for _, _, frames in rows) // 2
    for pk, sop, frames in rows:
        frames = max(1, frames or 1)
        if remaining < frames:
            return pk, sop, remaining
        remaining -= frames
    return None


@dataclass(frozen=True)
class StoredInstance:
    study_id: str
    storage_key: str
    path: Path | None
    frames: int
    study_pk: int
    transfer_syntax: str = ""

    @classmethod
    def of(
        cls,
        study: Study,
        storage_key: str,
        frames: int,
        storage: Storage,
        transfer_syntax: str = "",
    ) -> StoredInstance:
        """An instance of ``study`` stored under ``storage_key`` (found by the caller, who
        has checked that the actor may see the study)."""
        path = storage.local_path(storage_key)
        return cls(study.study_id, storage_key, path, frames, study.id, transfer_syntax)

    def existing_path(self) -> Path:
        """Where the file is; :class:`NotFound` where it has gone missing."""
        if self.path is None or not self.path.exists():
            raise NotFound("The stored file of this instance is missing.")
        return self.path


def instance(
    *,
    session: Session,
    actor: Actor,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    storage: Storage,
    comparing: str | None = None,
    study_id: str | None = None,
) -> StoredInstance:
    """The stored file of one instance, in one query (without loading its metadata).
    ``comparing`` and ``study_id``: as for :func:`metadata`."""
    rows = session.exec(
        select(Study, Instance.storage_key, Instance.number_of_frames, Instance.transfer_syntax_uid)
        .join(Series, col(Series.study_pk) == Study.id)
        .join(Instance, col(Instance.series_pk) == Series.id)
        .where(
            Study.study_instance_uid == study_uid,
            Series.series_instance_uid == series_uid,
            Instance.sop_instance_uid == sop_uid,
            *([Study.study_id == study_id] if study_id is not None else []),
        )
        .order_by(col(Study.id))
    ).all()
    seen = [row for row in rows if may_see(session, actor, row[0], comparing)]
    if not seen:
        raise NotFound(f"No instance {sop_uid} in series {series_uid} of a study you may see.")
    _the_one([row[0] for row in seen], study_uid)  # Conflict where the actor may see several
    study, storage_key, frames, syntax = seen[0]
    return StoredInstance.of(study, storage_key, frames, storage, syntax)


class _DatasetCache:
    """A few recently read files, so that scrolling a multi-frame object reads it once."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, pydicom.Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, found: StoredInstance) -> pydicom.Dataset:
        with self._lock:
            if found.storage_key in self._items:
                self._items.move_to_end(found.storage_key)
                return self._items[found.storage_key]
        path = found.existing_path()
        ds = pixels.read_dataset(path)
        if path.stat().st_size <= CACHE_MAX_BYTES:
            with self._lock:
                self._items[found.storage_key] = ds
                while len(self._items) > CACHE_FILES:
                    self._items.popitem(last=False)
        return ds


_cache = _DatasetCache()


def dataset(found: StoredInstance) -> pydicom.Dataset:
    return _cache.get(found)


def parse_frame_numbers(text: str, frames: int) -> list[int]:
    """``"1,3"`` to 0-based indexes, refusing numbers outside 1..frames."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput(
            f"Frame numbers must be integers separated by commas: {text!r}."
        ) from exc
    if not numbers:
        raise InvalidInput("No frame number given.")
    for n in numbers:
        if not 1 <= n <= frames:
            raise NotFound(f"Frame {n} does not exist: the instance has {frames} frame(s).")
    return [n - 1 for n in numbers]


def parse_frame_number(text: str, frames: int) -> int:
    """One frame number, as :func:`parse_frame_numbers` reads it, to its 0-based index."""
    indexes = parse_frame_numbers(text, frames)
    if len(indexes) != 1:
        raise InvalidInput(f"Give one frame number here, not several: {text!r}.")
    return indexes[0]


def parse_quality(text: str | None) -> int:
    """The JPEG ``quality`` parameter: 1 to 100, 90 when absent."""
    if text is None or text == "":
        return 90
    try:
        quality = int(text)
    except ValueError:
        quality = 0
    if not 1 <= quality <= 100:
        raise InvalidInput(f"quality must be a whole number from 1 to 100: {text!r}.")
    return quality


#: PS3.18 §8.3.5.1.3: the window parameter's functions, by the VOI LUT Function each names.
WINDOW_FUNCTIONS = {name: function for function, name in pixels.WINDOW_PARAM_NAMES.items()}


def parse_window(text: str | None) -> pixels.Window | None:
    """``"center,width,function"`` (PS3.18 window parameter; the function linear,
    linear-exact or sigmoid) to a :class:`Window`. Without the function, as this server's
    viewer asks, the image's own VOI LUT Function applies."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    function = WINDOW_FUNCTIONS.get(parts[2].lower()) if len(parts) == 3 else ""
    if len(parts) not in (2, 3) or function is None:
        raise InvalidInput(
            "window must be center,width,function (the function linear, linear-exact or "
            f"sigmoid; without it, the image's own): {text!r}."
        )
    try:
        return pixels.Window(float(parts[0]), float(parts[1]), function)
    except ValueError as exc:
        raise InvalidInput(f"window values must be numbers: {text!r}.") from exc


def parse_overlays(text: str | None) -> bool:
    """``overlays=true|false`` (this server's extension of the rendered resources): whether
    the frame's overlay planes are burnt into it, as they are by default. A viewer that draws
    them in a layer of its own, which its user can hide, asks without them."""
    if text is None or text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise InvalidInput(f"overlays must be true or false: {text!r}.")


def rendered(
    found: StoredInstance,
    *,
    frame: int,
    window: pixels.Window | None,
    fmt: str,
    quality: int = 90,
    overlays: bool = True,
) -> bytes:
    image = pixels.render(dataset(found), frame, window, with_overlays=overlays)
    return pixels.encode(image, fmt, quality)


UNCOMPRESSED = (transcode.EXPLICIT_LE, transcode.IMPLICIT_LE)


def frames(
    found: StoredInstance, indexes: list[int], wanted: Sequence[tuple[str, str]]
) -> tuple[str, list[bytes]]:
    """Frames ``indexes`` of an instance, with their parts' Content-Type, in the first of the
    ``wanted`` forms (pairs of media type and transfer syntax, ``*`` for any; see
    :func:`pacs_app.api.dicomweb.negotiate.accepted_frame_types`) that can be made:

    - *as stored* where the syntax is ``*`` or the stored compressed one
      (:func:`pixels.stored_frame`):
      compressed frames as encoded, native ones as their stored values; what the instance's
      metadata says of its pixels holds for these, colour included. Clients that decode
      frames themselves (OHIF and the cornerstone loaders ask ``transfer-syntax=*``) get this;
    - *uncompressed* (``application/octet-stream``, Explicit or Implicit VR Little Endian):
      native colour and single-bit frames as stored, as the metadata describes them (palette
      indexes, YBR, planes; bits packed 8 to a byte, compressed ones too once decoded), as
      for ``*``; the rest decoded: greyscale as stored values (bits above BitsStored
      cleared, signed values sign-extended), and compressed colour as interleaved RGB, which
      is what its decoders give (the metadata still names the stored form, as with other
      archives: a client that must have the metadata's form asks for it as stored). This
      server's viewer asks for colour images rendered, not as frames.

    Each part's Content-Type names its transfer syntax, which clients read to decode it.
    :class:`NotAcceptable` where none can be made (a compressed type other than the stored
    one: frames are not re-compressed).
    """
    ds = dataset(found)
    stored: list[tuple[bytes, str] | None] | None = None
    for media, syntax in wanted:
        if syntax not in UNCOMPRESSED:  # "*" or a compressed syntax: as stored, if it is that
            if stored is None:
                stored = [pixels.stored_frame(ds, i) for i in indexes]
            kept = stored[0][1] if all(stored) else None
            if kept is not None and syntax in ("*", kept):
                part = _frame_part(media, kept)
                if part is not None:
                    return f"{part}; transfer-syntax={kept}", [f[0] for f in stored if f]
        if media == "application/octet-stream" and syntax in (*UNCOMPRESSED, "*"):
            return f"{media}; transfer-syntax={transcode.EXPLICIT_LE}", _uncompressed(ds, indexes)
    syntax = found.transfer_syntax or ""
    raise NotAcceptable(
        "These frames can be sent uncompressed (application/octet-stream) or as stored ("
        + (transcode.syntax_name(syntax) if syntax else "in a syntax not known")
        + "), which the Accept header does not take."
    )


def _uncompressed(ds: pydicom.Dataset, indexes: list[int]) -> list[bytes]:
    """Frames ``indexes`` uncompressed, little endian (see :func:`frames`): a native colour or
    single-bit image's as stored, since decoded ones (RGB, interleaved, palette applied; a
    byte a pixel) would not be what its metadata describes; the rest decoded, single-bit
    ones packed again."""
    single_bit = int(ds.get("BitsAllocated") or 0) == 1
    if pixels.is_color(ds) or single_bit:
        stored = [pixels.stored_frame(ds, i) for i in indexes]
        if all(f is not None and f[1] == transcode.EXPLICIT_LE for f in stored):
            return [f[0] for f in stored if f is not None]
    if single_bit:
        return [
            np.packbits(pixels.decode_frame(ds, i).ravel(), bitorder="little").tobytes()
            for i in indexes
        ]
    return [pixels.raw_frame(ds, i) for i in indexes]


def _frame_part(media: str, syntax: str) -> str | None:
    """The Content-Type (without parameters) of a frame kept in ``syntax`` that a client asked
    for as ``media``; None where that type cannot carry it."""
    if media == "application/octet-stream":
        return media
    if media == "image/*":
        return transcode.frame_media(syntax)
    return media if syntax in transcode.FRAME_MEDIA.get(media, ()) else None


def frame_overlays(found: StoredInstance, frame: int) -> list[dict[str, Any]]:
    """The overlay planes drawn over one frame (:func:`pixels.overlays`), for a viewer to draw
    in its own layer: each with its group (``"6000"``), type (``"G"`` graphics, ``"R"`` region
    of interest), label, description, size, origin (1-based image row and column of its top
    left bit) and ``bits``: base64 of its rows' bits, 8 to a byte, the first in the most
    significant bit (``numpy.packbits``)."""
    return [
        {
            "group": f"{plane.group:04X}",
            "type": plane.kind,
            "label": plane.label,
            "description": plane.description,
            "rows": plane.rows,
            "columns": plane.columns,
            "origin": list(plane.origin),
            "bits": base64.b64encode(np.packbits(plane.bits).tobytes()).decode("ascii"),
        }
        for plane in pixels.overlays(dataset(found), frame)
    ]


def structured_report(
    session: Session, found: StoredInstance, storage: Storage | None = None
) -> dict[str, Any]:
    """A structured report's header and content tree (:func:`sr.read`), for a viewer to show.

    An item that refers to an image or other object of this same study carries that object's
    ``series_uid``, so that the viewer can open it, and ``where`` it is (``"series 2, image
    14"``); references outside the study have neither. An IMAGE item whose presentation state
    is in the study (a key object selection's, such as this PACS files at signing) says how
    that state shows the image, ``shown_as``: its ``rotation`` (clockwise, after a mirror),
    ``flipped``, ``window`` (``center,width[,function]``, or ``""`` for the image's own) and
    ``marks``, what it draws on the image (``kind``, points ``p`` in image pixels, ``label``);
    ``None`` elsewhere, or where the state cannot be read (with ``storage`` only)."""
    ds = dataset(found)
    if not sr.is_structured_report(ds):
        raise InvalidInput("This instance is not a structured report: it has no content tree.")
    report = sr.read(ds)
    referenced = {item.sop_instance_uid for item in report.items if item.sop_instance_uid}
    referenced |= {item.presentation_uid for item in report.items if item.presentation_uid}
    found_in: dict[str, tuple[str, str]] = {}
    stored_at: dict[str, tuple[str, int]] = {}
    if referenced:
        rows = session.exec(
            select(
                Instance.sop_instance_uid,
                Series.series_instance_uid,
                Series.series_number,
                Instance.instance_number,
                Instance.storage_key,
                Instance.number_of_frames,
            )
            .join(Series, col(Series.id) == Instance.series_pk)
            .where(
                Instance.study_pk == found.study_pk,
                col(Instance.sop_instance_uid).in_(sorted(referenced)),
            )
        ).all()
        for sop, series_uid, series_number, instance_number, key, frames in rows:
            where = [
                f"{name} {number}"
                for name, number in (("series", series_number), ("image", instance_number))
                if number is not None
            ]
            found_in[sop] = (series_uid, ", ".join(where))
            stored_at[sop] = (key, frames)
    states: dict[str, pydicom.Dataset | None] = {}
    body = asdict(report)
    for item in body["items"]:
        item["series_uid"], item["where"] = found_in.get(item["sop_instance_uid"], ("", ""))
        state_uid = item.pop("presentation_uid")
        item["shown_as"] = None
        if not (storage and state_uid in stored_at and item["series_uid"]):
            continue
        if state_uid not in states:
            states[state_uid] = _presentation_state(found, stored_at[state_uid], storage)
        seen = states[state_uid] and gsps.seen_in(
            states[state_uid], item["sop_instance_uid"], (item["frames"] or (1,))[0]
        )
        if seen:
            window = seen.window
            item["shown_as"] = {
                "rotation": seen.turn.rotation,
                "flipped": seen.turn.flipped,
                "window": pixels.window_param(window.center, window.width, window.function)
                if window
                else "",
                "marks": [
                    {"kind": m.kind, "p": list(m.points), "label": m.label} for m in seen.marks
                ],
            }
    return body


def _presentation_state(
    found: StoredInstance, stored: tuple[str, int], storage: Storage
) -> pydicom.Dataset | None:
    """The presentation state stored under ``stored`` (key, frames) in the study of
    ``found``; ``None`` where it is missing, unreadable or not a presentation state."""
    key, frames = stored
    try:
        ds = dataset(
            StoredInstance(found.study_id, key, storage.local_path(key), frames, found.study_pk)
        )
    except (NotFound, OSError, ValueError, pydicom.errors.InvalidDicomError):
        return None
    return ds if str(ds.get("SOPClassUID", "")) == gsps.GSPS_SOP_CLASS else None


def waveform_channels(found: StoredInstance) -> dict[str, Any]:
    """A waveform's groups of channels (:func:`waveform.read`), for a viewer to draw.

    Built field by field: ``asdict`` would copy every sample (0.2 s for a 12-lead ECG)."""
    try:
        read = waveform.read(dataset(found))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    return {
        **vars(read),
        "groups": [
            {**vars(group), "channels": [vars(channel) for channel in group.channels]}
            for group in read.groups
        ],
    }
