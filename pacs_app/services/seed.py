"""Demo data: the four users of the product documentation and one demo centre.

Created only in development mode, and only on a database that has no users yet. Production
refuses these passwords at sign-in and refuses to start while a demo account still has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, func, select

from pacs_app.models import Centre, Currency, Role, User


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: Role
    email: str
    full_name: str
    in_demo_centre: bool


DEMO_CENTRE_NAME = "Demo Diagnostic Centre"
DEMO_CENTRE_CODE = "DEMO"

DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "admin123", Role.ADMIN, "admin@pacs.local", "Demo Administrator", False),
    # A tele-radiologist: belongs to no centre, reads for all of them.
    DemoUser(
        "radiologist",
        "radio123",
        Role.RADIOLOGIST,
        "radiologist@pacs.local",
        "Dr Demo Radiologist",
        False,
    ),
    DemoUser("centre", "centre123", Role.CENTRE, "centre@pacs.local", "Demo Centre Manager", True),
    DemoUser(
        "technician", "tech123", Role.TECHNICIAN, "technician@pacs.local", "Demo Technician", True
    ),
)

DEMO_PASSWORDS: frozenset[str] = frozenset(u.password for u in DEMO_USERS)


def seed_demo_data(session: Session) -> bool:
    """Create the demo centre and users when the database has no users. Returns whether it did.

    The caller decides whether demo data are allowed (``settings.demo_data_allowed``).
    """
    from pacs_app.core.security import hash_password

    if session.exec(select(func.count()).select_from(User)).one() > 0:
        return False
    centre = session.exec(select(Centre).where(Centre.code == DEMO_CENTRE_CODE)).first()
    if centre is None:
        centre = Centre(name=DEMO_CENTRE_NAME, code=DEMO_CENTRE_CODE, default_currency=Currency.INR)
        session.add(centre)
        session.flush()
    for demo in DEMO_USERS:
        session.add(
            User(
                username=demo.username,
                email=demo.email,
                full_name=demo.full_name,
                hashed_password=hash_password(demo.password),
                role=demo.role,
                centre_id=centre.id if demo.in_demo_centre else None,
            )
        )
    # demo prices (INR, the demo centre's currency) for every modality, from today
    from datetime import UTC, datetime

    from pacs_app.models import PricingRule

    today = datetime.now(UTC).date()
    for modality, rupees in DEMO_PRICES_INR.items():
        session.add(
            PricingRule(
                centre_id=None,
                centre_key=0,
                modality=modality,
                currency=Currency.INR,
                price_minor=rupees * 100,
                urgent_surcharge_minor=rupees * 25,  # +25 %
                stat_surcharge_minor=rupees * 50,  # +50 %
                effective_from=today,
                note="demo price",
            )
        )
    session.commit()
    return True


# Demo default prices per read, in rupees (development data only).
DEMO_PRICES_INR = {
    "CR": 300,
    "DX": 300,
    "XRAY": 300,
    "CT": 1500,
    "MR": 2500,
    "US": 600,
    "MG": 800,
    "NM": 2000,
    "PT": 4000,
    "XA": 1200,
    "RF": 900,
    "OT": 500,
}


def accounts_with_demo_passwords(session: Session) -> list[str]:
    """Usernames of active documented demo accounts that still have their demo password."""
    from pacs_app.core.security import verify_password

    found = []
    for demo in DEMO_USERS:
        user = session.exec(select(User).where(User.username == demo.username)).first()
        if user and user.is_active and verify_password(demo.password, user.hashed_password)[0]:
            found.append(user.username)
    return found
