"""The DICOM listener: modalities and gateways send images by C-STORE, and check it by C-ECHO;
workstations allowed to query and retrieve find studies by C-FIND and fetch them by C-GET or
C-MOVE.

A storage SCP (PS3.4 Annex B) and verification SCP (Annex A) over DICOM's upper layer (PS3.8),
built on pynetdicom. It lets in only the devices registered for a centre
(:mod:`pacs_app.services.devices`), calling this server's AE title (``DICOM_AE_TITLE``) from
one of their networks; every other association is rejected ("calling AE title not
recognised", or "called AE title not recognised") and the refusal audited.

Each instance goes through :func:`~pacs_app.services.ingest.ingest` on its own, as the
account the device uploads as, so it is stored (file and rows, durably) before the C-STORE
response says so; files of one StudyInstanceUID land in one study, whatever association
they come by. The response's status (PS3.4 Table B.2-1, PS3.7 Annex C):

- ``0x0000`` success: stored, or the study holds this instance already with the same data
  (a re-send, perhaps re-encoded without loss);
- ``0x0111`` duplicate SOP instance: the study holds other data under this SOP Instance UID,
  which it keeps (the ErrorComment names what differs, never a value);
- ``0xA900`` data set does not match: its SOP Class or Instance UID is not the one the
  request names (pynetdicom files the data set under the request's UIDs, in its file meta);
- ``0xC000`` cannot understand: not a DICOM data set, or without the UIDs a PACS needs;
- ``0xA700`` out of resources: the file is over the size limit, or storage or the database
  failed (the sender may try again later);
- ``0x0124`` not authorised: the device, its centre or its account was deactivated during
  the association.

The dataset is written to a file as it arrives (never held whole in memory), in the
staging folder on the storage's filesystem, so that ingest links it into place instead of
copying it. Every transfer syntax is accepted and kept as sent; nothing is decoded.

Query and retrieve (PS3.4 Annex C, Study Root and Patient Root) are for a device registered
as allowed to (:func:`~pacs_app.services.devices.retriever`, asked again for each request),
as its account: :mod:`pacs_app.services.query_retrieve` answers, by the same rules as QIDO-RS
and WADO-RS. A C-GET sends each instance back on the requestor's association as stored, or
converted where it accepted another transfer syntax for its SOP class; a C-MOVE sends them
the same way on an association of its own with the move destination, a device of the
requestor's centre registered with its storage SCP's port
(:func:`~pacs_app.services.devices.move_destination`).

Run it with ``pacs dicom-listener``, or let ``reflex run`` start it beside the app when
``DICOM_PORT`` is set.
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, build_context, evt
from pynetdicom.presentation import (
    AllStoragePresentationContexts,
    PresentationContext,
    StoragePresentationContexts,
)
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacs_app.config import settings
from pacs_app.core import db, logs
from pacs_app.core.children import parent_gone, start_child
from pacs_app.core.errors import DomainError, InvalidInput, PermissionDenied, TooLarge
from pacs_app.dicom.reader import InvalidDicom
from pacs_app.dicom.sameness import LOSSLESS
from pacs_app.dicom.transcode import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from pacs_app.services import devices, dicomweb, ingest, query_retrieve, uploads
from pacs_app.storage import Storage, get_storage

# named, not __name__: run as `python -m`, the module is __main__
log = logging.getLogger("pacs_app.dimse.listener")

SUCCESS = 0x0000
DUPLICATE_SOP_INSTANCE = 0x0111
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # C-FIND and C-GET: not an identifier of the model
UNABLE_TO_PROCESS = 0xC000
PENDING, CANCELLED = 0xFF00, 0xFE00
DATA_SET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
# A-ASSOCIATE-RJ: rejected permanently by the service user, for this reason
_REJECTED_PERMANENT, _SERVICE_USER = 0x01, 0x01
_CALLING_AE_NOT_RECOGNISED, _CALLED_AE_NOT_RECOGNISED = 0x03, 0x07
# ... or transiently by the service provider: temporary congestion (the database is down)
_REJECTED_TRANSIENT, _PROVIDER_PRESENTATION, _CONGESTION = 0x02, 0x03, 0x01
ERROR_COMMENT_MAX = 64  # ErrorComment is an LO
# PDUs up to 1 MiB from the sender: fewer, larger fragments than the default 16 KiB
MAX_PDU = 1 << 20
MAX_ASSOCIATIONS = 16
MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)
_UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, EXPLICIT_BE)
# Of the transfer syntaxes a sender proposes for an image, the first of these is accepted:
# lossless compression first (kept as sent: smaller, and nothing lost), then uncompressed,
# and a lossy syntax only where the sender proposes nothing else, so that a sender holding
# an image without loss is never asked to compress it with loss.
ACCEPTED_SYNTAXES = [
    *(ts for ts in ALL_TRANSFER_SYNTAXES if ts in LOSSLESS and ts not in _UNCOMPRESSED),
    *_UNCOMPRESSED,
    *(ts for ts in ALL_TRANSFER_SYNTAXES if ts not in LOSSLESS),
]


_STUDY_ROOT = (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
_PATIENT_ROOT = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
)


def _model(event) -> str:
    """The information model a query or retrieval request is of."""
    patient_root = event.request.AffectedSOPClassUID in _PATIENT_ROOT
    return query_retrieve.PATIENT_ROOT if patient_root else query_retrieve.STUDY_ROOT


@dataclass
class _Association:
    """What the listener knows of an accepted association."""

    sender: devices.Sender
    address: str
    counts: dict[str, int] = field(
        default_factory=lambda: {"stored": 0, "duplicates": 0, "failed": 0}
    )


class Repeats:
    """Refusals recorded (audited and logged) at most once a minute for one caller, address
    and reason, so that a modality that retries every few seconds does not fill the audit
    trail; the next record says how many like it were left out meanwhile."""

    EVERY_S = 60.0
    MAX_KEPT = 10_000

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._last: dict[tuple, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def due(self, key: tuple) -> int | None:
        """How many like refusals were left out since the last record, when this one is to
        be recorded; None when it is left out."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.EVERY_S:
                self._last[key] = (last[0], last[1] + 1)
                return None
            if len(self._last) >= self.MAX_KEPT:  # many callers: forget the quiet ones
                self._last = {k: v for k, v in self._last.items() if now - v[0] < self.EVERY_S}
            self._last[key] = (now, 0)
            return last[1] if last is not None else 0


class Listener:
    """The storage and verification SCP, on the database at ``url`` (the app's by default)
    and ``storage``."""

    def __init__(
        self, *, ae_title: str | None = None, url: str | None = None, storage: Storage | None
    ):
        self.ae_title = (ae_title or settings.dicom_ae_title).strip(" ")
        self.url = url
        self.storage = storage
        self._associations: dict[int, _Association] = {}
        self._lock = threading.Lock()
        self._server = None
        self.refusals = Repeats()

    def application_entity(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        ae.maximum_pdu_size = MAX_PDU
        ae.maximum_associations = MAX_ASSOCIATIONS
        for context in AllStoragePresentationContexts:
            # the SCP role for what we receive; the SCU role, where a C-GET's requestor asks
            # for it (PS3.7 D.3.3.4), for what we send back on its association
            ae.add_supported_context(
                context.abstract_syntax, ACCEPTED_SYNTAXES, scu_role=True, scp_role=True
            )
        ae.add_supported_context(Verification)
        for sop_class in (*_PATIENT_ROOT, *_STUDY_ROOT):
            ae.add_supported_context(sop_class)
        return ae

    def start(self, host: str, port: int):
        """Listen on ``host``:``port`` in background threads; returns the server (its
        ``server_address`` says the port when ``port`` is 0)."""
        # Datasets go to a file as they arrive (see the module's docstring).
        _config.STORE_RECV_CHUNKED_DATASET = True
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_REJECTED, self._on_ended),  # by pynetdicom, after _on_requested let it in
        ]
        self._server = self.application_entity().start_server(
            (host, port), block=False, evt_handlers=handlers
        )
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # --- association ----------------------------------------------------------------------

    def _on_requested(self, event) -> None:
        assoc = event.assoc
        request = assoc.requestor.primitive
        calling = (request.calling_ae_title or "").strip(" ")
        called = (request.called_ae_title or "").strip(" ")
        address = assoc.requestor.address
        refusal, recorded = None, True
        try:
            with db.session_scope(self.url) as session:
                if called != self.ae_title:
                    reason = f"called AE title {called!r} is not this server's ({self.ae_title})"
                    refusal = (_CALLED_AE_NOT_RECOGNISED, reason)
                else:
                    try:
                        sender = devices.sender(
                            session=session, calling_ae=calling, address=address
                        )
                    except devices.DeviceRefused as exc:
                        refusal = (_CALLING_AE_NOT_RECOGNISED, exc.message)
                if refusal is None:
                    devices.mark_seen(session=session, device_id=sender.device_id)
                else:
                    repeats = self.refusals.due((calling, called, address, refusal[1]))
                    recorded = repeats is not None
                    if recorded:
                        devices.record_refusal(
                            session=session,
                            calling_ae=calling,
                            address=address,
                            called_ae=called,
                            reason=refusal[1],
                            repeats=repeats,
                        )
        except Exception:
            log.exception("an association from %s could not be checked", address)
            assoc.acse.send_reject(_REJECTED_TRANSIENT, _PROVIDER_PRESENTATION, _CONGESTION)
            assoc.kill()
            return
        if refusal is not None:
            if recorded:
                log.warning(
                    "refused an association from %s calling as %r: %s", address, calling, refusal[1]
                )
            assoc.acse.send_reject(_REJECTED_PERMANENT, _SERVICE_USER, refusal[0])
            assoc.kill()
            return
        with self._lock:
            self._associations[id(assoc)] = _Association(sender=sender, address=address)

    def _on_ended(self, event) -> None:
        with self._lock:
            ended = self._associations.pop(id(event.assoc), None)
        if ended is None:
            return
        counts = ended.counts
        log.info(
            "association from %s (%s) ended: %d stored, %d duplicates, %d failed",
            ended.address,
            ended.sender.ae_title,
            counts["stored"],
            counts["duplicates"],
            counts["failed"],
        )

    # --- services -------------------------------------------------------------------------

    @staticmethod
    def _on_echo(_event) -> int:
        return SUCCESS

    def _on_store(self, event):
        current = self._current(event)
        if current is None:  # not accepted by _on_requested: cannot happen, refuse anyway
            return _status(NOT_AUTHORIZED, "association not accepted")
        status, comment, kind = self._store(current, event)
        current.counts[kind] += 1
        return _status(status, comment)

    def _store(self, current: _Association, event) -> tuple[int, str | None, str]:
        """The response's status and ErrorComment, and which count the instance adds to."""
        request = event.request
        uid = str(request.AffectedSOPInstanceUID or "")
        path = Path(event.dataset_path)
        staged = ingest.StagedFile(
            name=f"instance {uid}"[:100] if uid else "instance",
            path=path,
            disposable=True,
            declared=(str(request.AffectedSOPClassUID or ""), uid),
        )
        storage = self.storage or get_storage()
        try:
            with db.session_scope(self.url) as session:
                # asked again for each instance: a deactivation stops the next one
                sender = devices.sender(
                    session=session, calling_ae=current.sender.ae_title, address=current.address
                )
                result = ingest.ingest(
                    session=session,
                    actor=sender.actor,
                    files=[staged],
                    storage=storage,
                    address=current.address,
                )
        except PermissionDenied as exc:  # DeviceRefused among them
            return NOT_AUTHORIZED, exc.message, "failed"
        except TooLarge as exc:
            return OUT_OF_RESOURCES, exc.message, "failed"
        except ingest.DeclarationMismatch as exc:
            return DATA_SET_MISMATCH, exc.reason, "failed"
        except InvalidDicom as exc:
            return CANNOT_UNDERSTAND, exc.reason, "failed"
        except InvalidInput as exc:
            return CANNOT_UNDERSTAND, exc.message, "failed"
        except Exception:
            log.exception("an instance from %s could not be stored", current.sender.ae_title)
            failure = "not stored: storage or database failure; send it again later"
            return OUT_OF_RESOURCES, failure, "failed"
        outcome = result.files[0]
        if outcome.status == "conflict":
            return DUPLICATE_SOP_INSTANCE, outcome.difference, "failed"
        return SUCCESS, None, "duplicates" if outcome.status == "duplicate" else "stored"

    # --- query and retrieve ------------------------------------------------------------------

    def _current(self, event) -> _Association | None:
        with self._lock:
            return self._associations.get(id(event.assoc))

    def _refusal(self, exc: Exception) -> tuple[int, str]:
        """The failure status and ErrorComment for what a query or retrieval raised."""
        if isinstance(exc, PermissionDenied):  # DeviceRefused among them
            return NOT_AUTHORIZED, exc.message
        if isinstance(exc, query_retrieve.IdentifierRefused):
            return IDENTIFIER_DOES_NOT_MATCH, exc.message
        if isinstance(exc, DomainError):  # a value that cannot match, a study not seen
            return UNABLE_TO_PROCESS, exc.message
        log.exception("a query or retrieval could not be answered", exc_info=exc)
        return UNABLE_TO_PROCESS, "not answered: an error on this server; ask again later"

    def _as_retriever(self, event, answer):
        """``answer(session, actor, address)`` for the device of ``event``'s association,
        asked again now whether it may query and retrieve (raises what refuses it)."""
        current = self._current(event)
        if current is None:  # not accepted by _on_requested: cannot happen, refuse anyway
            raise PermissionDenied("association not accepted")
        with db.session_scope(self.url) as session:
            device = devices.retriever(
                session=session, calling_ae=current.sender.ae_title, address=current.address
            )
            return answer(session, device.actor, current.address)

    def _retrieval(self, event, destination: str | None = None):
        """The files a C-GET (or a C-MOVE to ``destination``) of ``event`` sends, and None;
        or none and the refusal's status, where it is refused."""
        try:
            files = self._as_retriever(
                event,
                lambda session, actor, address: query_retrieve.retrieval(
                    session=session,
                    actor=actor,
                    identifier=event.identifier,
                    address=address,
                    destination=destination,
                    model=_model(event),
                ),
            )
        except Exception as exc:
            return [], _status(*self._refusal(exc))
        return files, None

    def _on_find(self, event):
        """C-FIND: pending answers, one per match (or a failure status)."""
        try:
            found = self._as_retriever(
                event,
                lambda session, actor, address: query_retrieve.find(
                    session=session,
                    actor=actor,
                    identifier=event.identifier,
                    ae_title=self.ae_title,
                    address=address,
                    model=_model(event),
                ),
            )
        except Exception as exc:
            yield _status(*self._refusal(exc)), None
            return
        for match in found.matches:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, match
        if found.cut:
            log.info("a C-FIND matched over %d: answered with the first", len(found.matches))

    def _on_get(self, event):
        """C-GET: the number of instances, then each one sent back on the association."""
        files, refusal = self._retrieval(event)
        yield from self._sub_operations(event, files, refusal, lambda: event.assoc)

    def _on_move(self, event):
        """C-MOVE: the destination's address and port, the number of instances, then each
        one, which pynetdicom sends on an association of its own with the destination.

        pynetdicom asks for the destination before anything else and answers 0xA801 (move
        destination unknown) itself where there is none. A request refused for another
        reason (the device may not retrieve, the identifier, a study it may not see) is
        answered with that refusal's status and ErrorComment once the association with its
        destination is open, carrying nothing: pynetdicom sends a status and comment of the
        handler's only after that. The destination is a device of the requestor's own centre,
        at the address registered for it, whatever the refusal."""
        current = self._current(event)
        try:
            if current is None:  # not accepted by _on_requested: cannot happen, refuse anyway
                raise devices.DestinationRefused("association not accepted")
            with db.session_scope(self.url) as session:
                destination = devices.move_destination(
                    session=session,
                    requestor=current.sender,
                    destination_ae=event.move_destination or "",
                    address=current.address,
                )
        except devices.DestinationRefused as exc:
            log.warning("a C-MOVE was refused: %s", exc.message)
            yield None, None
            return
        except Exception:
            log.exception("the destination of a C-MOVE could not be looked up")
            yield None, None
            return
        files, refusal = self._retrieval(event, destination.ae_title)
        opened = []  # the association with the destination, once pynetdicom opens it
        yield (
            destination.address,
            destination.port,
            {
                "contexts": _move_contexts(files),
                "max_pdu": MAX_PDU,
                "evt_handlers": [(evt.EVT_ACCEPTED, lambda e: opened.append(e.assoc))],
            },
        )
        yield from self._sub_operations(event, files, refusal, lambda: opened[0])

    def _sub_operations(self, event, files, refusal, association):
        """What a C-GET's or C-MOVE's handler yields after its destination: the number of
        instances, then each one, in a syntax ``association()`` (the one they go on)
        accepted; or, where the request was refused, that refusal."""
        if refusal is not None:
            yield 1
            yield refusal, None
            return
        yield len(files)
        storage = self.storage or get_storage()
        for item in files:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, self._outgoing(association(), item, storage)

    @staticmethod
    def _outgoing(assoc, item, storage: Storage) -> Dataset:
        """The stored file as a data set in a transfer syntax the requestor accepted for its
        SOP class, converted where it accepted not the stored one and this server can."""
        accepted = [
            cx.transfer_syntax[0]
            for cx in assoc.accepted_contexts
            if cx.abstract_syntax == item.sop_class_uid and cx.as_scu
        ]
        (outgoing,), _ = dicomweb.outgoing([item], accepted)
        syntax, body = dicomweb.file_body(outgoing, storage, chunk=1 << 20)
        if outgoing.convert_to is not None and syntax == outgoing.convert_to:
            return pydicom.dcmread(io.BytesIO(next(body)))  # converted, in memory
        with storage.open(item.storage_key) as source:  # as stored (read lazily above)
            return pydicom.dcmread(source, force=True)


def _move_contexts(files: list[dicomweb.StoredFile]) -> list[PresentationContext]:
    """The presentation contexts proposed to a C-MOVE's destination: for each SOP class
    sent, the uncompressed syntaxes every storage SCP takes, and each syntax an instance of
    it is stored in, so that it goes as stored where the destination accepts that."""
    stored: dict[str, set[str]] = {}
    for item in files:
        stored.setdefault(item.sop_class_uid, set()).add(item.transfer_syntax)
    if not stored:  # nothing to send (a refusal): contexts any storage SCP accepts some of
        stored = {cx.abstract_syntax: set() for cx in StoragePresentationContexts}
    plain = [build_context(sop_class, [EXPLICIT_LE, IMPLICIT_LE]) for sop_class in stored]
    kept = [
        build_context(sop_class, syntax)
        for sop_class, syntaxes in stored.items()
        for syntax in sorted(syntaxes)
        if syntax and syntax not in (EXPLICIT_LE, IMPLICIT_LE)
    ]
    return [*plain, *kept][:MAX_CONTEXTS]


def _status(status: int, comment: str | None) -> Dataset | int:
    if not comment:
        return status
    answer = Dataset()
    answer.Status = status
    # LO: at most 64 characters of the default repertoire, no backslash
    text = comment.encode("ascii", "replace").decode().replace("\\", "/")
    answer.ErrorComment = (
        text[: ERROR_COMMENT_MAX - 3] + "..." if len(text) > ERROR_COMMENT_MAX else text
    )
    return answer


def start_embedded() -> object | None:
    """Start the listener as a child of the web process when ``DICOM_PORT`` is set (returns
    the Popen, or None). Of several backend workers' listeners, one listens at a time; the
    others stand by to take over."""
    if not settings.dicom_port:
        return None
    log.info("starting the DICOM listener on port %s", settings.dicom_port)
    where = f"{settings.dicom_bind_address}:{settings.dicom_port}"
    return start_child("pacs_app.dimse.listener", one_per_app=f"the DICOM listener on {where}")


def serve(*, host: str, port: int, ae_title: str, parent_pid: int | None = None) -> int:
    """Run the listener until SIGTERM or SIGINT (or the parent process ends)."""
    # pynetdicom's own records stay out of the logs below warnings: at debug level they
    # print whole data sets.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # received data sets are written beside the storage, so that ingest can link them
    tempfile.tempdir = str(uploads.staging_root())
    listener = Listener(ae_title=ae_title, storage=get_storage())
    try:
        listener.start(host, port)
    except OSError as exc:
        log.error("the DICOM listener cannot listen on %s:%s (%s)", host, port, exc.strerror)
        return 1
    log.info("DICOM listener %s on %s:%s", listener.ae_title, host, port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.wait(2):
        if parent_gone(parent_pid):
            log.info("the app that started the DICOM listener has stopped; stopping too")
            break
    listener.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pacs dicom-listener", description=__doc__)
    parser.add_argument("--port", type=int, default=settings.dicom_port)
    parser.add_argument("--host", default=settings.dicom_bind_address)
    parser.add_argument("--ae-title", default=settings.dicom_ae_title)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logs.configure()
    if not args.port:
        print("error: no port: set DICOM_PORT or pass --port", file=sys.stderr)
        return 2
    try:
        ae_title = devices.normalize_ae_title(args.ae_title)
    except InvalidInput as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return serve(host=args.host, port=args.port, ae_title=ae_title, parent_pid=args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
