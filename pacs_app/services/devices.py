"""DICOM devices: which modalities and gateways may send a centre's images to the DICOM listener.

A device is a calling AE title, the networks it may call from, and the account its images are
uploaded as: an active technician or centre user of the device's centre, so that what a
device sends is scoped, audited and billed exactly like that account's uploads. The AE title
alone proves nothing (any machine can claim one), hence the networks; 0.0.0.0/0 opens a device
to every IPv4 address, deliberately.

Administrators manage every centre's devices; a centre user its own centre's
(:data:`~pacs_app.services.authz.Action.MANAGE_DEVICES`). Every change is audited in the same
commit.

The listener (:mod:`pacs_app.dimse.listener`) asks :func:`sender` when a device opens an
association and again for each instance it sends, so that deactivating a device, its centre or
its account stops it at once; a refusal says why (:class:`DeviceRefused`) and is audited by
:func:`record_refusal`, without patient data.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from pacs_app.config import AE_TITLE_MAX_LENGTH, AE_TITLE_PATTERN, settings
from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import Centre, DicomDevice, User
from pacs_app.models.base import utcnow
from pacs_app.services import audit
from pacs_app.services.audit import AuditAction, Outcome
from pacs_app.services.authz import (
    UPLOADER_ROLES,
    Action,
    Actor,
    can,
    require,
    visible_centre_ids,
)
from pacs_app.services.dto import CentrePublic, Page

_AE_TITLE = re.compile(AE_TITLE_PATTERN)
MAX_NETWORKS = 20
MAX_NETWORKS_TEXT = 400
MAX_DESCRIPTION = 200
ANY_IPV4 = "0.0.0.0/0"


class DevicePublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    ae_title: str
    centre: CentrePublic
    uploads_as_id: int
    uploads_as: str  # the account's username
    networks: str
    description: str
    is_active: bool
    may_retrieve: bool  # may also query (C-FIND) and retrieve (C-GET, C-MOVE)
    move_port: int | None  # a C-MOVE destination's storage SCP port
    move_address: str  # ... and address; empty: the address it calls from
    created_at: datetime
    last_seen_at: datetime | None

    @classmethod
    def of(cls, device: DicomDevice, centre: Centre, user: User) -> DevicePublic:
        return cls(
            id=device.id,
            ae_title=device.ae_title,
            centre=CentrePublic.of(centre),
            uploads_as_id=user.id,
            uploads_as=user.username,
            networks=device.networks,
            description=device.description,
            is_active=device.is_active,
            may_retrieve=device.may_retrieve,
            move_port=device.move_port,
            move_address=device.move_address,
            created_at=device.created_at,
            last_seen_at=device.last_seen_at,
        )

    @property
    def open_to_any_address(self) -> bool:
        return any(n.prefixlen == 0 for n in parse_networks(self.networks))


class UploaderChoice(BaseModel):
    """An account a device of the centre may upload as."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    role: str


@dataclass(frozen=True)
class Sender:
    """A device the listener accepts: the actor its instances are uploaded as (and whose
    studies it may query and retrieve, where ``may_retrieve``)."""

    device_id: int
    ae_title: str
    actor: Actor
    may_retrieve: bool = False


class DeviceRefused(PermissionDenied):
    """The listener refuses this caller; the message says why (for the audit and the log)."""

    code = "device_refused"


class DestinationRefused(DeviceRefused):
    """A C-MOVE's destination is not one this server sends to for the requestor."""

    code = "move_destination_refused"


@dataclass(frozen=True)
class MoveDestination:
    """Where a C-MOVE sends: the destination device's AE title, address and port."""

    ae_title: str
    address: str
    port: int


# --- validation ---------------------------------------------------------------------------


def normalize_ae_title(value: str | None) -> str:
    """An AE title as stored and compared: without its insignificant leading and trailing
    spaces; raises :class:`InvalidInput` for what is not an AE title."""
    raw = value or ""
    if len(raw.strip(" ")) > AE_TITLE_MAX_LENGTH or not _AE_TITLE.match(raw):
        raise InvalidInput(
            "An AE title is 1 to 16 characters: letters, digits, spaces and punctuation "
            "other than the backslash (e.g. CT_ROOM1)."
        )
    return raw.strip(" ")


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of a device's ``networks`` text (CIDR blocks or single addresses,
    separated by spaces or commas); raises :class:`InvalidInput` naming a bad one."""
    items = [item for item in re.split(r"[\s,]+", text or "") if item]
    if not items:
        raise InvalidInput(
            "Give the addresses the device calls from: an IP address (10.1.2.3), a network "
            f"(10.1.2.0/24), several separated by spaces, or {ANY_IPV4} for any IPv4 address."
        )
    if len(items) > MAX_NETWORKS:
        raise InvalidInput(f"At most {MAX_NETWORKS} addresses or networks per device.")
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise InvalidInput(
                f"{item[:50]!r} is not an IP address or a network in CIDR form (10.1.2.0/24)."
            ) from exc
    return networks


def _networks_text(text: str) -> str:
    """``text`` checked and written canonically (10.1.2.7/24 becomes 10.1.2.0/24)."""
    value = " ".join(str(n) for n in dict.fromkeys(parse_networks(text)))
    if len(value) > MAX_NETWORKS_TEXT:
        raise InvalidInput("The list of addresses is too long: give fewer, or wider, networks.")
    return value


def _description(text: str | None) -> str:
    value = " ".join((text or "").split())
    if len(value) > MAX_DESCRIPTION:
        raise InvalidInput(f"The description must be at most {MAX_DESCRIPTION} characters.")
    return value


def _move_port(value: int | str | None) -> int | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidInput(
            f"The C-MOVE port is the port of the device's own storage SCP, 1 to 65535 (e.g. "
            f"11113), not {text[:20]!r}; leave it empty where it is no C-MOVE destination."
        )
    return int(text)


def _move_address(text: str | None, networks: str, port: int | None) -> str:
    """The C-MOVE address as stored: empty, or an IP address the device may call from."""
    value = (text or "").strip()
    if not value:
        return ""
    if port is None:
        raise InvalidInput("Give the C-MOVE port too, or leave the C-MOVE address empty.")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidInput(
            f"{value[:50]!r} is not an IP address: give the address of the device's storage "
            "SCP (10.1.2.3), or leave it empty for the address it calls from."
        ) from exc
    if not address_allowed(networks, value):
        raise InvalidInput(
            f"{ip} is not among the addresses the device calls from: C-MOVE sends only to "
            "a device's own addresses."
        )
    return str(ip)


def address_allowed(networks: str, address: str) -> bool:
    """Whether ``address`` (a peer's IP address) lies in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    try:
        return any(ip in network for network in parse_networks(networks))
    except InvalidInput:
        return False


# --- management ---------------------------------------------------------------------------


def _centre(session: Session, centre_id: int | None) -> Centre:
    centre = session.get(Centre, centre_id) if centre_id is not None else None
    if centre is None:
        raise NotFound("No such centre.")
    return centre


def _uploader(session: Session, centre: Centre, user_id: int | None) -> User:
    """The account a device of ``centre`` uploads as: an active account that may upload for
    that centre (a technician or centre user of it)."""
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise InvalidInput(
            f"Choose the account the device uploads as: a technician or centre user of "
            f"{centre.code}."
        )
    if not can(Actor.of(user), Action.UPLOAD_STUDY, centre):
        raise InvalidInput(
            f"{user.username} may not upload for {centre.code}: a device uploads as a "
            "technician or centre user of its centre."
        )
    if not user.is_active:
        raise InvalidInput(f"{user.username} is deactivated: choose an active account.")
    return user


def _require_free_title(session: Session, ae_title: str, *, other_than: int | None = None):
    query = select(DicomDevice.id).where(DicomDevice.ae_title == ae_title)
    if other_than is not None:
        query = query.where(DicomDevice.id != other_than)
    if session.exec(query).first() is not None:
        raise Conflict(
            f"A device with AE title {ae_title!r} is registered already (AE titles are unique "
            "across all centres)."
        )


def _public(session: Session, device: DicomDevice) -> DevicePublic:
    return DevicePublic.of(
        device, session.get(Centre, device.centre_id), session.get(User, device.uploads_as_id)
    )


def _get_to_manage(session: Session, actor: Actor, device_id: int) -> DicomDevice:
    """The device, once the actor may manage it; another centre's is :class:`NotFound`."""
    require(actor, Action.MANAGE_DEVICES)
    device = session.get(DicomDevice, device_id)
    if device is None or not can(actor, Action.MANAGE_DEVICES, device):
        raise NotFound("No such DICOM device.")
    return device


def _audit(session, action, actor, device: DicomDevice, address, detail=None) -> None:
    audit.record(
        session,
        action=action,
        actor=actor,
        resource_type="device",
        resource_id=device.id,
        centre_id=device.centre_id,
        address=address,
        detail={"ae_title": device.ae_title, **(detail or {})},
    )


def list_devices(
    *,
    session: Session,
    actor: Actor,
    search: str | None = None,
    page: int = 1,
    page_size: int = 25,
) -> Page[DevicePublic]:
    """The devices the actor manages (administrators: all; a centre user: its centre's), by
    centre and AE title, a page at a time; ``search`` matches the AE title, description or
    centre code."""
    require(actor, Action.MANAGE_DEVICES)
    page = max(1, page)
    page_size = min(max(1, page_size), 100)
    query = select(DicomDevice, Centre, User).where(
        DicomDevice.centre_id == Centre.id, DicomDevice.uploads_as_id == User.id
    )
    centres = visible_centre_ids(actor)
    if centres is not None:
        query = query.where(col(DicomDevice.centre_id).in_(centres))
    if search and search.strip():
        like = f"%{search.strip().lower()[:100]}%"
        query = query.where(
            or_(
                func.lower(DicomDevice.ae_title).like(like),
                func.lower(DicomDevice.description).like(like),
                func.lower(Centre.code).like(like),
            )
        )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    # AE titles are unique: the order is total, so pages neither repeat nor skip a device
    rows = session.exec(
        query.order_by(Centre.code, DicomDevice.ae_title)
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return Page[DevicePublic](
        items=[DevicePublic.of(d, c, u) for d, c, u in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


def get_device(*, session: Session, actor: Actor, device_id: int) -> DevicePublic:
    return _public(session, _get_to_manage(session, actor, device_id))


def uploader_choices(*, session: Session, actor: Actor, centre_id: int) -> list[UploaderChoice]:
    """The accounts a device of ``centre_id`` may upload as (its active technicians and
    centre users), for the device form."""
    centre = _centre(session, centre_id)
    require(actor, Action.MANAGE_DEVICES, centre)
    users = session.exec(
        select(User)
        .where(
            User.centre_id == centre.id,
            col(User.role).in_(UPLOADER_ROLES),
            col(User.is_active).is_(True),
        )
        .order_by(User.username)
    ).all()
    return [UploaderChoice(id=u.id, username=u.username, role=u.role.value) for u in users]


def create_device(
    *,
    session: Session,
    actor: Actor,
    ae_title: str,
    centre_id: int | None,
    uploads_as_id: int | None,
    networks: str,
    description: str = "",
    may_retrieve: bool = False,
    move_port: int | str | None = None,
    move_address: str = "",
    address: str | None = None,
) -> DevicePublic:
    """Register a device of ``centre_id`` (a centre user's own centre when ``None``);
    ``may_retrieve``: it may also query and retrieve what its account may see; ``move_port``
    (and ``move_address``): where its storage SCP takes what a C-MOVE sends it."""
    centre = _centre(session, centre_id if centre_id is not None else actor.centre_id)
    require(actor, Action.MANAGE_DEVICES, centre)
    if not centre.is_active:
        raise Conflict(f"{centre.code} is deactivated: reactivate it before adding devices.")
    ae_title = normalize_ae_title(ae_title)
    networks = _networks_text(networks)
    move_port = _move_port(move_port)
    device = DicomDevice(
        ae_title=ae_title,
        centre_id=centre.id,
        uploads_as_id=_uploader(session, centre, uploads_as_id).id,
        networks=networks,
        description=_description(description),
        may_retrieve=bool(may_retrieve),
        move_port=move_port,
        move_address=_move_address(move_address, networks, move_port),
    )
    _require_free_title(session, ae_title)
    session.add(device)
    session.flush()
    _audit(session, AuditAction.DEVICE_CREATED, actor, device, address)
    session.commit()
    return _public(session, device)


def update_device(
    *,
    session: Session,
    actor: Actor,
    device_id: int,
    ae_title: str,
    uploads_as_id: int | None,
    networks: str,
    description: str = "",
    may_retrieve: bool = False,
    move_port: int | str | None = None,
    move_address: str = "",
    address: str | None = None,
) -> DevicePublic:
    """Change a device's AE title, account, networks, description, whether it may query
    and retrieve, or its C-MOVE port and address (not its centre: a device that moves is
    registered again at its new centre)."""
    device = _get_to_manage(session, actor, device_id)
    centre = _centre(session, device.centre_id)
    ae_title = normalize_ae_title(ae_title)
    _require_free_title(session, ae_title, other_than=device.id)
    names = (
        "ae_title",
        "uploads_as_id",
        "networks",
        "description",
        "may_retrieve",
        "move_port",
        "move_address",
    )
    before = tuple(getattr(device, name) for name in names)
    uploader = _uploader(session, centre, uploads_as_id)
    networks = _networks_text(networks)
    move_port = _move_port(move_port)
    move_address = _move_address(move_address, networks, move_port)
    device.ae_title = ae_title
    device.uploads_as_id = uploader.id
    device.networks = networks
    device.description = _description(description)
    device.may_retrieve = bool(may_retrieve)
    device.move_port, device.move_address = move_port, move_address
    after = tuple(getattr(device, name) for name in names)
    changed = [name for name, old, new in zip(names, before, after, strict=True) if old != new]
    if changed:
        _audit(
            session,
            AuditAction.DEVICE_UPDATED,
            actor,
            device,
            address,
            {"changed": changed, "previous_ae_title": before[0]},
        )
    session.commit()
    return _public(session, device)


def set_device_active(
    *, session: Session, actor: Actor, device_id: int, active: bool, address: str | None = None
) -> DevicePublic:
    """Switch a device on or off: a deactivated one's associations are refused (and one in
    progress stores nothing more)."""
    device = _get_to_manage(session, actor, device_id)
    if device.is_active != active:
        device.is_active = active
        action = AuditAction.DEVICE_ACTIVATED if active else AuditAction.DEVICE_DEACTIVATED
        _audit(session, action, actor, device, address)
        session.commit()
    return _public(session, device)


def delete_device(
    *, session: Session, actor: Actor, device_id: int, address: str | None = None
) -> str:
    """Remove a device's registration (what it sent stays). Returns its AE title."""
    device = _get_to_manage(session, actor, device_id)
    _audit(session, AuditAction.DEVICE_DELETED, actor, device, address)
    session.delete(device)
    session.commit()
    return device.ae_title


# --- the listener's questions -------------------------------------------------------------


def sender(*, session: Session, calling_ae: str, address: str) -> Sender:
    """The device calling as ``calling_ae`` from ``address`` and the actor it uploads as;
    raises :class:`DeviceRefused` saying why it may not send."""
    ae_title = (calling_ae or "").strip(" ")
    row = session.exec(
        select(DicomDevice, Centre, User).where(
            DicomDevice.ae_title == ae_title,
            DicomDevice.centre_id == Centre.id,
            DicomDevice.uploads_as_id == User.id,
        )
    ).first()
    if row is None:
        raise DeviceRefused(f"no device is registered with AE title {ae_title!r}")
    device, centre, user = row
    if not device.is_active:
        raise DeviceRefused(f"device {ae_title} is deactivated")
    if not address_allowed(device.networks, address):
        raise DeviceRefused(f"device {ae_title} may not call from {address}")
    if not centre.is_active:
        raise DeviceRefused(f"device {ae_title}'s centre {centre.code} is deactivated")
    if not user.is_active or not can(Actor.of(user), Action.UPLOAD_STUDY, centre):
        raise DeviceRefused(
            # the account first: a C-STORE response's ErrorComment keeps 64 characters
            f"its account {user.username} may not upload for {centre.code} (deactivated, "
            "moved or of another role)"
        )
    return Sender(
        device_id=device.id,
        ae_title=device.ae_title,
        actor=Actor.of(user),
        may_retrieve=device.may_retrieve,
    )


def retriever(*, session: Session, calling_ae: str, address: str) -> Sender:
    """:func:`sender`, once the device may also query and retrieve; raises
    :class:`DeviceRefused` saying why not."""
    found = sender(session=session, calling_ae=calling_ae, address=address)
    if not found.may_retrieve:
        raise DeviceRefused(f"device {found.ae_title} may send, not query or retrieve")
    return found


def move_destination(
    *, session: Session, requestor: Sender, destination_ae: str, address: str
) -> MoveDestination:
    """Where a C-MOVE by ``requestor`` (calling from ``address``) to ``destination_ae`` is
    sent: an active device of the requestor's centre with a C-MOVE port, at its registered
    address, or at ``address`` where the requestor moves to itself and registered none.
    Anywhere else would let a workstation send its centre's studies to a machine nobody
    registered for them. Raises :class:`DestinationRefused` saying why not."""
    ae_title = (destination_ae or "").strip(" ")
    device = session.exec(select(DicomDevice).where(DicomDevice.ae_title == ae_title)).first()
    if device is None or device.centre_id != requestor.actor.centre_id:
        raise DestinationRefused(f"move destination {ae_title!r} is no device of this centre")
    if not device.is_active:
        raise DestinationRefused(f"move destination {ae_title} is deactivated")
    if device.move_port is None:
        raise DestinationRefused(f"move destination {ae_title} has no C-MOVE port registered")
    host = device.move_address
    if not host:
        if device.id != requestor.device_id:
            raise DestinationRefused(f"move destination {ae_title} has no C-MOVE address")
        host = address
    return MoveDestination(ae_title=device.ae_title, address=host, port=device.move_port)


def mark_seen(*, session: Session, device_id: int) -> None:
    """Record that the device opened an association now."""
    session.execute(
        update(DicomDevice).where(DicomDevice.id == device_id).values(last_seen_at=utcnow())
    )
    session.commit()


def record_refusal(
    *,
    session: Session,
    calling_ae: str,
    address: str,
    called_ae: str,
    reason: str,
    repeats: int = 0,
) -> None:
    """Audit an association the listener refused (AE titles and address only); ``repeats``:
    how many like it since the last record were not recorded."""
    detail = {"calling_ae": calling_ae, "called_ae": called_ae, "reason": reason}
    if repeats:
        detail["repeats_left_out"] = repeats
    audit.record(
        session,
        action=AuditAction.DICOM_REFUSED,
        outcome=Outcome.DENIED,
        username=None,
        resource_type="device",
        resource_id=(calling_ae or "").strip(" ")[:64] or None,
        address=address,
        detail=detail,
    )
    session.commit()


class ListenerStatus(BaseModel):
    """Where devices send to: this server's AE title and port, and whether something
    answers on that port now (``port`` None: no listener is configured)."""

    ae_title: str
    port: int | None
    answering: bool


def listener_status(*, session: Session, actor: Actor) -> ListenerStatus:
    """For the devices page: the listener's AE title and port, and whether it answers."""
    require(actor, Action.MANAGE_DEVICES)
    port = settings.dicom_port
    answering = False
    if port:
        host = settings.dicom_bind_address
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        try:
            with socket.create_connection((host, port), timeout=0.5):
                answering = True
        except OSError:
            answering = False
    return ListenerStatus(
        ae_title=settings.dicom_ae_title.strip(" "), port=port, answering=answering
    )
