"""The DICOM listener's tests: a centre with a technician and a registered modality, and
the listener itself on a local port, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pacs_app.models import Role
from pacs_app.services import devices
from pacs_app.storage import get_storage
from tests.factories import actor_of, make_centre, make_user


@pytest.fixture
def world(session):
    centre = make_centre(session, "NORTH")
    tech = make_user(session, Role.TECHNICIAN, centre=centre)
    admin = make_user(session, Role.ADMIN)
    device = devices.create_device(
        session=session,
        actor=actor_of(admin),
        ae_title="MODALITY1",
        centre_id=centre.id,
        uploads_as_id=tech.id,
        networks="127.0.0.1",
    )
    return {"centre": centre, "tech": tech, "admin": admin, "device": device}


@pytest.fixture
def listener(database_url, engine, storage_root):
    from pacs_app.dimse.listener import Listener

    listener = Listener(ae_title="PACS", url=database_url, storage=get_storage())
    listener.port = listener.start("127.0.0.1", 0).server_address[1]
    yield listener
    listener.stop()


@pytest.fixture
def port(listener) -> int:
    return listener.port
