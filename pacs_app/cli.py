"""The ``pacs`` command: operator tasks at the server's shell.

    pacs migrate                       apply pending database migrations
    pacs bootstrap                     migrate, seed demo data (development), safety checks
    pacs create-centre NAME CODE [--currency INR]
    pacs create-user USERNAME --role admin|centre|technician|radiologist [--centre CODE]
                     [--email E] [--full-name N] [--password-stdin]
    pacs set-password USERNAME [--password-stdin]
    pacs deactivate-user USERNAME / pacs activate-user USERNAME

Passwords are read from a prompt (or one line of standard input with ``--password-stdin``),
never from the command line, where other users could see them.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pydantic import ValidationError

from pacs_app.core.errors import DomainError


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("error: the passwords do not match")
    return first


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pacs", description="Teleradiology PACS administration")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("bootstrap", help="migrate, seed demo data in development, check safety")

    c = sub.add_parser("create-centre", help="create a diagnostic centre")
    c.add_argument("name")
    c.add_argument("code", help="2-16 uppercase letters or digits")
    c.add_argument("--currency", default="USD", choices=["USD", "INR", "AED"])

    u = sub.add_parser("create-user", help="create a user account")
    u.add_argument("username")
    u.add_argument(
        "--role", required=True, choices=["admin", "centre", "technician", "radiologist"]
    )
    u.add_argument(
        "--centre",
        help="centre code (required for centre and technician users; omit for a tele-radiologist)",
    )
    u.add_argument("--email")
    u.add_argument("--full-name")
    u.add_argument("--password-stdin", action="store_true")

    s = sub.add_parser("set-password", help="set a user's password")
    s.add_argument("username")
    s.add_argument("--password-stdin", action="store_true")

    for name in ("deactivate-user", "activate-user"):
        a = sub.add_parser(name, help=f"{name.split('-')[0]} an account")
        a.add_argument("username")

    w = sub.add_parser(
        "worker", help="run AI analysis jobs from the database (any number, any machine)"
    )
    w.add_argument("--once", action="store_true", help="run at most one job, then exit")

    d = sub.add_parser(
        "dicom-listener",
        help="receive images from registered DICOM devices (C-STORE, C-ECHO)",
    )
    d.add_argument("--port", type=int, help="TCP port (default: DICOM_PORT)")
    d.add_argument("--host", help="address to listen on (default: DICOM_BIND_ADDRESS)")
    d.add_argument("--ae-title", help="this server's AE title (default: DICOM_AE_TITLE)")

    r = sub.add_parser(
        "register-model",
        help="register a local MONAI bundle as a learned-model plugin (weights checked by sha256)",
    )
    r.add_argument("bundle", help="the bundle folder (configs/, models/model.pt)")
    r.add_argument("--name", required=True)
    r.add_argument("--version", required=True)
    r.add_argument("--sha256", required=True, help="the expected sha256 of models/model.pt")
    r.add_argument("--modality", action="append", required=True, help="repeat for several")
    r.add_argument("--body-part", action="append", default=[])
    r.add_argument("--task", choices=["segmentation", "classification"], required=True)
    r.add_argument("--label", action="append", required=True, help="output labels, in order")
    r.add_argument("--size", type=int, nargs="+", required=True, help="input size, e.g. 96 96 96")
    r.add_argument(
        "--intensity-range", type=float, nargs=2, default=None, help="e.g. -1000 1000 (HU)"
    )
    r.add_argument("--licence", default="")
    r.add_argument("--intended-use", default="")
    r.add_argument(
        "--validated",
        action="store_true",
        help="validated for clinical use (otherwise its output is kept out of the clinical UI)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from pacs_app import config  # noqa: F401 (reads the settings, and refuses unsafe ones)
    except (RuntimeError, ValidationError) as exc:  # InsecureConfiguration, a bad value
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pacs_app.core import db
    from pacs_app.services import system, users

    try:
        if args.command == "migrate":
            db.migrate()
            print(f"database at revision {db.current_revision()}")
            return 0
        if args.command == "bootstrap":
            system.bootstrap()
            print(f"database at revision {db.current_revision()}; ready")
            return 0
        if args.command == "register-model":
            from pacs_app.services import ai

            db.migrate()
            with db.session_scope() as session:
                model = ai.register_model(
                    session=session,
                    actor=None,
                    name=args.name,
                    version=args.version,
                    bundle_path=args.bundle,
                    sha256=args.sha256,
                    modalities=args.modality,
                    body_parts=args.body_part,
                    task=args.task,
                    labels=args.label,
                    spatial_size=args.size,
                    intensity_range=tuple(args.intensity_range) if args.intensity_range else None,
                    licence=args.licence,
                    intended_use=args.intended_use,
                    validated=args.validated,
                )
            print(f"registered {model.name} {model.version}: {model.state}")
            return 0
        if args.command == "dicom-listener":
            from pacs_app.dimse import listener

            db.migrate()
            options = (
                ("--port", args.port),
                ("--host", args.host),
                ("--ae-title", args.ae_title),
            )
            return listener.main(
                [x for name, v in options if v is not None for x in (name, str(v))]
            )
        if args.command == "worker":
            from pacs_app.ai import worker

            db.migrate()
            return worker.main(["--once"] if args.once else [])
        db.migrate()
        with db.session_scope() as session:
            if args.command == "create-centre":
                centre = users.create_centre(
                    session=session,
                    actor=None,
                    name=args.name,
                    code=args.code,
                    currency=args.currency,
                )
                print(f"created centre {centre.code} (id {centre.id})")
            elif args.command == "create-user":
                centre_id = (
                    users.get_centre_by_code(session=session, code=args.centre).id
                    if args.centre
                    else None
                )
                user = users.create_user(
                    session=session,
                    actor=None,
                    username=args.username,
                    password=_read_password(args),
                    role=args.role,
                    centre_id=centre_id,
                    email=args.email,
                    full_name=args.full_name,
                )
                print(f"created {user.role.value} user {user.username} (id {user.id})")
            elif args.command == "set-password":
                user = users.set_password(
                    session=session,
                    actor=None,
                    username=args.username,
                    new_password=_read_password(args),
                )
                print(f"password set for {user.username}")
            elif args.command in ("deactivate-user", "activate-user"):
                active = args.command == "activate-user"
                user = users.set_active(
                    session=session, actor=None, username=args.username, active=active
                )
                print(f"{user.username} is now {'active' if user.is_active else 'inactive'}")
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
