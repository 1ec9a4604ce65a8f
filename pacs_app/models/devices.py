"""DICOM devices: the modalities and gateways allowed to send a centre's images by C-STORE,
and the workstations allowed to query and retrieve them (C-FIND, C-GET, C-MOVE)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from pacs_app.models.base import timestamp_field


class DicomDevice(SQLModel, table=True):
    """A calling AE title the DICOM listener accepts, the addresses it may call from, and the
    account its images are uploaded as (a technician or centre user of the same centre)."""

    __tablename__ = "dicom_device"

    id: int | None = Field(default=None, primary_key=True)
    # DICOM AE titles are case-sensitive; leading and trailing spaces are not significant.
    ae_title: str = Field(max_length=16, unique=True)
    centre_id: int = Field(foreign_key="centre.id", index=True, ondelete="RESTRICT")
    uploads_as_id: int = Field(foreign_key="user_account.id", index=True, ondelete="RESTRICT")
    # The networks it may call from, as CIDR blocks separated by spaces ("10.1.2.3/32
    # 192.168.4.0/24"); 0.0.0.0/0 is any IPv4 address.
    networks: str = Field(max_length=400)
    description: str = Field(default="", max_length=200)
    is_active: bool = Field(default=True)
    # Whether it may also query (C-FIND) and retrieve (C-GET) what its account may see: a
    # reading workstation, not a modality that only sends. Off unless an administrator or
    # the centre's manager turns it on.
    may_retrieve: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # Where a C-MOVE sends what is retrieved to this device as its destination: the port of
    # its own storage SCP (None: it is no C-MOVE destination), at ``move_address`` (an IP
    # address within ``networks``; empty: the address it calls from, when it moves to itself).
    move_port: int | None = Field(default=None)
    move_address: str = Field(default="", max_length=45, sa_column_kwargs={"server_default": ""})
    created_at: datetime = timestamp_field()
    # When it last opened an association that was accepted.
    last_seen_at: datetime | None = timestamp_field(nullable=True, default_now=False)
