"""DICOM devices: who may register them, what a registration must hold, and whom the listener
lets in (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from pacs_app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pacs_app.models import AuditEvent, Role
from pacs_app.services import devices, users
from tests.factories import actor_of, make_centre, make_user


@pytest.fixture
def world(session):
    north, south = make_centre(session, "NORTH"), make_centre(session, "SOUTH")
    return {
        "north": north,
        "south": south,
        "admin": make_user(session, Role.ADMIN),
        "manager": make_user(session, Role.CENTRE, centre=north),
        "tech": make_user(session, Role.TECHNICIAN, centre=north),
        "south_tech": make_user(session, Role.TECHNICIAN, centre=south),
        "radiologist": make_user(session, Role.RADIOLOGIST, centre=north),
    }


def _create(session, world, actor="admin", **kw):
    values = {
        "ae_title": "CT_ROOM1",
        "centre_id": world["north"].id,
        "uploads_as_id": world["tech"].id,
        "networks": "10.1.2.3",
    } | kw
    return devices.create_device(session=session, actor=actor_of(world[actor]), **values)


def test_an_administrator_registers_a_device_and_it_is_audited(session, world):
    device = _create(
        session, world, ae_title="  CT_ROOM1 ", networks="10.1.2.7/24, 10.9.9.9", description="CT"
    )
    assert device.ae_title == "CT_ROOM1"  # insignificant spaces gone
    assert device.networks == "10.1.2.0/24 10.9.9.9/32"  # written canonically
    assert device.centre.code == "NORTH" and device.uploads_as == world["tech"].username
    assert device.is_active and device.last_seen_at is None and not device.open_to_any_address
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "device.created")).one()
    assert event.resource_id == str(device.id) and event.centre_id == world["north"].id
    assert event.detail == {"ae_title": "CT_ROOM1"}


def test_a_centre_user_manages_its_own_centre_devices_only(session, world):
    own = _create(session, world, actor="manager", centre_id=None)  # its own centre
    assert own.centre.code == "NORTH"
    south = _create(
        session,
        world,
        ae_title="SOUTH_MR",
        centre_id=world["south"].id,
        uploads_as_id=world["south_tech"].id,
    )
    manager = actor_of(world["manager"])
    with pytest.raises(PermissionDenied):
        _create(
            session,
            world,
            actor="manager",
            ae_title="X",
            centre_id=world["south"].id,
            uploads_as_id=world["south_tech"].id,
        )
    listed = devices.list_devices(session=session, actor=manager)
    assert [d.ae_title for d in listed.items] == ["CT_ROOM1"] and listed.total == 1
    for call in (devices.get_device, devices.delete_device):
        with pytest.raises(NotFound):  # another centre's device is invisible
            call(session=session, actor=manager, device_id=south.id)
    admin_sees = devices.list_devices(session=session, actor=actor_of(world["admin"]))
    assert {d.ae_title for d in admin_sees.items} == {"CT_ROOM1", "SOUTH_MR"}
    assert [
        d.ae_title
        for d in devices.list_devices(
            session=session, actor=actor_of(world["admin"]), search="south"
        ).items
    ] == ["SOUTH_MR"]


def test_a_long_device_list_comes_a_page_at_a_time_in_a_stable_order(session, world):
    titles = [f"CT_{n:02d}" for n in range(7)]
    for title in reversed(titles):
        _create(session, world, ae_title=title)
    admin = actor_of(world["admin"])
    pages = [
        devices.list_devices(session=session, actor=admin, page=n, page_size=3) for n in (1, 2, 3)
    ]
    assert [p.total for p in pages] == [7, 7, 7] and pages[0].pages == 3
    assert [d.ae_title for p in pages for d in p.items] == titles  # none repeated or skipped
    beyond = devices.list_devices(session=session, actor=admin, page=4, page_size=3)
    assert beyond.items == [] and beyond.total == 7
    found = devices.list_devices(session=session, actor=admin, search="ct_0", page_size=100)
    assert found.total == 7 and len(found.items) == 7
    # a centre user's pages count its own centre's devices only
    _create(
        session,
        world,
        ae_title="CT_SOUTH",
        centre_id=world["south"].id,
        uploads_as_id=world["south_tech"].id,
    )
    assert devices.list_devices(session=session, actor=admin).total == 8
    manager = actor_of(world["manager"])
    assert devices.list_devices(session=session, actor=manager, page_size=3).total == 7


@pytest.mark.parametrize("who", ["tech", "radiologist"])
def test_technicians_and_radiologists_may_not_manage_devices(session, world, who):
    with pytest.raises(PermissionDenied):
        _create(session, world, actor=who)
    with pytest.raises(PermissionDenied):
        devices.list_devices(session=session, actor=actor_of(world[who]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ae_title": ""}, "1 to 16 characters"),
        ({"ae_title": "    "}, "1 to 16 characters"),
        ({"ae_title": "A" * 17}, "1 to 16 characters"),
        ({"ae_title": "CT\\1"}, "backslash"),
        ({"ae_title": "CTÉ"}, "1 to 16 characters"),
        ({"networks": ""}, "0.0.0.0/0 for any"),
        ({"networks": "10.1.2.300"}, "'10.1.2.300' is not an IP address"),
        ({"networks": "example.org"}, "is not an IP address"),
        ({"networks": " ".join(f"10.0.0.{i}" for i in range(21))}, "At most 20"),
        ({"description": "x" * 201}, "at most 200"),
        ({"move_port": "0"}, "1 to 65535"),
        ({"move_port": "65536"}, "1 to 65535"),
        ({"move_port": "store"}, "not 'store'"),
        ({"move_address": "10.1.2.3"}, "Give the C-MOVE port too"),
        ({"move_port": 11113, "move_address": "ws.example"}, "'ws.example' is not an IP"),
        ({"move_port": 11113, "move_address": "10.9.9.9"}, "not among the addresses"),
    ],
)
def test_a_registration_names_what_is_wrong(session, world, changes, message):
    with pytest.raises(InvalidInput, match=message):
        _create(session, world, **changes)
    assert devices.list_devices(session=session, actor=actor_of(world["admin"])).total == 0


def test_a_device_uploads_as_an_active_uploader_of_its_own_centre(session, world):
    for who, message in (
        ("south_tech", "may not upload for NORTH"),
        ("radiologist", "may not upload for NORTH"),
        ("admin", "may not upload for NORTH"),
    ):
        with pytest.raises(InvalidInput, match=message):
            _create(session, world, uploads_as_id=world[who].id)
    users.set_active(session=session, actor=None, user_id=world["tech"].id, active=False)
    with pytest.raises(InvalidInput, match="is deactivated"):
        _create(session, world)
    choices = devices.uploader_choices(
        session=session, actor=actor_of(world["admin"]), centre_id=world["north"].id
    )
    assert [c.username for c in choices] == [world["manager"].username]


def test_ae_titles_are_unique_across_centres(session, world):
    _create(session, world)
    with pytest.raises(Conflict, match="registered already"):
        _create(session, world, centre_id=world["south"].id, uploads_as_id=world["south_tech"].id)


def test_edit_deactivate_and_delete_are_audited(session, world):
    device = _create(session, world)
    admin = actor_of(world["admin"])
    edited = devices.update_device(
        session=session,
        actor=admin,
        device_id=device.id,
        ae_title="CT_ROOM2",
        uploads_as_id=world["manager"].id,
        networks="0.0.0.0/0",
        description="new",
    )
    assert edited.ae_title == "CT_ROOM2" and edited.uploads_as == world["manager"].username
    assert edited.open_to_any_address
    off = devices.set_device_active(session=session, actor=admin, device_id=device.id, active=False)
    assert not off.is_active
    assert devices.delete_device(session=session, actor=admin, device_id=device.id) == "CT_ROOM2"
    events = session.exec(
        select(AuditEvent).where(AuditEvent.resource_type == "device").order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == [
        "device.created",
        "device.updated",
        "device.deactivated",
        "device.deleted",
    ]
    assert events[1].detail["changed"] == ["ae_title", "uploads_as_id", "networks", "description"]
    assert events[1].detail["previous_ae_title"] == "CT_ROOM1"
    assert devices.list_devices(session=session, actor=admin).total == 0


def test_the_listener_lets_in_a_registered_device_from_its_networks_only(session, world):
    _create(session, world, networks="10.1.2.0/24 2001:db8::/32")
    sender = devices.sender(session=session, calling_ae="CT_ROOM1 ", address="10.1.2.99")
    assert sender.actor.user_id == world["tech"].id and sender.actor.centre_id == world["north"].id
    assert devices.sender(session=session, calling_ae="CT_ROOM1", address="::ffff:10.1.2.5")
    assert devices.sender(session=session, calling_ae="CT_ROOM1", address="2001:db8::7")
    with pytest.raises(devices.DeviceRefused, match=r"may not call from 10\.1\.3\.1"):
        devices.sender(session=session, calling_ae="CT_ROOM1", address="10.1.3.1")
    with pytest.raises(devices.DeviceRefused, match="no device is registered"):
        devices.sender(session=session, calling_ae="ct_room1", address="10.1.2.99")  # case counts


def test_the_listener_refuses_what_was_switched_off(session, world):
    device = _create(session, world, networks="0.0.0.0/0")
    admin = actor_of(world["admin"])

    def refused(match):
        with pytest.raises(devices.DeviceRefused, match=match):
            devices.sender(session=session, calling_ae="CT_ROOM1", address="192.0.2.1")

    devices.set_device_active(session=session, actor=admin, device_id=device.id, active=False)
    refused("CT_ROOM1 is deactivated")
    devices.set_device_active(session=session, actor=admin, device_id=device.id, active=True)
    users.set_active(session=session, actor=None, user_id=world["tech"].id, active=False)
    refused(f"its account {world['tech'].username} may not upload for NORTH")
    users.set_active(session=session, actor=None, user_id=world["tech"].id, active=True)
    users.set_centre_active(session=session, actor=admin, centre_id=world["north"].id, active=False)
    refused("centre NORTH is deactivated")


def test_a_refusal_is_audited_without_patient_data(session):
    devices.record_refusal(
        session=session,
        calling_ae="STRANGER",
        address="192.0.2.9",
        called_ae="PACS",
        reason="no device is registered with AE title 'STRANGER'",
    )
    event = session.exec(select(AuditEvent)).one()
    assert (event.action, event.outcome, event.address) == (
        "dicom.association_refused",
        "denied",
        "192.0.2.9",
    )
    assert event.resource_id == "STRANGER" and event.actor_id is None
    assert set(event.detail) == {"calling_ae", "called_ae", "reason"}


def test_a_c_move_goes_only_to_a_device_of_the_requestors_centre_registered_for_it(session, world):
    reading = _create(session, world, ae_title="READING", networks="10.1.2.0/24", may_retrieve=True)
    assert reading.move_port is None and reading.move_address == ""
    viewer = _create(
        session,
        world,
        ae_title="VIEWER",
        networks="10.1.2.0/24",
        move_port=" 11113 ",
        move_address="10.1.2.40",
    )
    assert viewer.move_port == 11113 and viewer.move_address == "10.1.2.40"
    _create(
        session,
        world,
        ae_title="SOUTH_WS",
        centre_id=world["south"].id,
        uploads_as_id=world["south_tech"].id,
        move_port=104,
        move_address="10.1.2.3",
    )
    requestor = devices.retriever(session=session, calling_ae="READING", address="10.1.2.7")

    def destination(ae_title):
        return devices.move_destination(
            session=session, requestor=requestor, destination_ae=ae_title, address="10.1.2.7"
        )

    assert destination("VIEWER ") == devices.MoveDestination("VIEWER", "10.1.2.40", 11113)
    with pytest.raises(devices.DestinationRefused, match="READING has no C-MOVE port"):
        destination("READING")
    with pytest.raises(devices.DestinationRefused, match="'SOUTH_WS' is no device of this"):
        destination("SOUTH_WS")
    with pytest.raises(devices.DestinationRefused, match="'NOBODY' is no device of this"):
        destination("NOBODY")

    admin = actor_of(world["admin"])
    changed = devices.update_device(
        session=session,
        actor=admin,
        device_id=reading.id,
        ae_title="READING",
        uploads_as_id=world["tech"].id,
        networks="10.1.2.0/24",
        may_retrieve=True,
        move_port=11112,
    )
    # to itself, with no address registered: where its association comes from
    assert destination("READING") == devices.MoveDestination("READING", "10.1.2.7", 11112)
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "device.updated").order_by(AuditEvent.id)
    ).all()[-1]
    assert event.detail["changed"] == ["move_port"]
    # ... but another device without an address is nowhere known
    devices.update_device(
        session=session,
        actor=admin,
        device_id=viewer.id,
        ae_title="VIEWER",
        uploads_as_id=world["tech"].id,
        networks="10.1.2.0/24",
        move_port=11113,
    )
    with pytest.raises(devices.DestinationRefused, match="VIEWER has no C-MOVE address"):
        destination("VIEWER")
    devices.set_device_active(session=session, actor=admin, device_id=changed.id, active=False)
    with pytest.raises(devices.DestinationRefused, match="READING is deactivated"):
        destination("READING")
