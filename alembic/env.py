"""Alembic environment: SQLModel metadata, URL from pacs_app.config unless given."""

from logging.config import fileConfig

from sqlmodel import SQLModel

import pacs_app.models  # noqa: F401  (registers every table)
from alembic import context
from pacs_app.config import settings
from pacs_app.core.db import get_engine, one_at_a_time

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = SQLModel.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or settings.database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = get_engine(_url())
    # Backends starting together on one database would each apply the same pending migrations,
    # and block or fail on each other's tables: they take turns, and the next finds none pending.
    with engine.connect() as connection, one_at_a_time(connection, "migrate"):
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table by copying it and dropping the old one. With
            # foreign keys enforced, that drop deletes every row pointing into the table (ON
            # DELETE CASCADE: a study's series and instances), empties others (SET NULL) or
            # fails (RESTRICT). SQLite's advice for altering tables: keys off meanwhile (it
            # takes effect outside a transaction only), checked at the end.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                render_as_batch=sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(
                            f"the migration left {len(broken)} row(s) pointing at no row, "
                            f"the first in table {broken[0][0]}"
                        )
            connection.commit()
        finally:
            if sqlite:  # the pool hands this connection out again
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
