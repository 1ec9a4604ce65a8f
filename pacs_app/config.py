"""One settings object, read once from the environment or `.env`.

Every environment variable the application reads is a field here and is documented in
`.env.example`. Import the module-level :data:`settings`; tests build their own
:class:`Settings` instances.

Production mode (``PACS_ENV=production``) refuses unsafe values at start: a missing, placeholder
or short ``SECRET_KEY``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT_DIR = Path(__file__).resolve().parent.parent

#: The placeholder secret used in development. Production refuses it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0000000000"
MIN_SECRET_KEY_LENGTH = 32
#: A DICOM AE title (PS3.5, VR AE): 1 to 16 characters, not all spaces, of the default
#: repertoire without backslash or control characters; leading and trailing spaces are not
#: significant.
AE_TITLE_PATTERN = r"^[\x20-\x5b\x5d-\x7e]*[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]*$"
AE_TITLE_MAX_LENGTH = 16


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class InsecureConfiguration(RuntimeError):
    """Raised when production mode is started with unsafe settings."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=str(ROOT_DIR / ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # `FRONTEND_PORT=`, as .env.example has it, means unset
    )

    pacs_env: Environment = Environment.DEVELOPMENT
    secret_key: str = DEV_SECRET_KEY
    database_url: str = f"sqlite:///{ROOT_DIR / 'data' / 'pacs.db'}"
    storage_path: Path = ROOT_DIR / "storage"
    redis_url: str | None = None
    # PostgreSQL: the connections each process of the app keeps open (its pool), and how many
    # more it may open under load. Each backend worker (several with REDIS_URL) has its own:
    # their sum must stay under the server's max_connections (the app warns at start where it
    # may not). Unset: see ``database_pool``.
    database_pool_size: int | None = Field(default=None, ge=1, le=1000)
    database_max_overflow: int | None = Field(default=None, ge=0, le=1000)

    access_token_expire_minutes: int = Field(default=480, ge=1, le=60 * 24 * 7)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"

    # Failed sign-in throttling: after this many failures within the window, the account
    # (or the address) is refused until the window has passed since the last failure.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)

    # Uploads: the largest single file, and limits on zip archives (entries and unpacked size).
    max_upload_file_mb: int = Field(default=2048, ge=1)
    max_zip_entries: int = Field(default=20000, ge=1)
    max_zip_unpacked_mb: int = Field(default=8192, ge=1)
    # Processes that ingest `POST /studies` uploads beside the web process, so that ingest
    # uses every CPU and leaves the web process's interpreter to the pages and the viewer.
    # Unset: one per CPU (2 to 8) where the backend runs one worker (no REDIS_URL), none
    # where it runs several (they use the CPUs already). 0: ingest in the web process.
    ingest_processes: int | None = Field(default=None, ge=0, le=64)

    # Turnaround targets from receipt to delivery, per priority: worklists highlight studies
    # past theirs, dashboards report the share delivered within them.
    tat_target_minutes_stat: int = Field(default=60, ge=1)
    tat_target_minutes_urgent: int = Field(default=240, ge=1)
    tat_target_minutes_routine: int = Field(default=1440, ge=1)
    # Where report PDFs find a Unicode TrueType font (patient names in any script); empty:
    # DejaVu Sans where the system has it.
    pacs_pdf_font: str = ""

    # AI analysis. The embedded worker: `reflex run` starts one worker process of its own (the
    # web process never imports torch); turn it off where `pacs worker` processes run instead.
    ai_embedded_worker: bool = True
    ai_worker_poll_seconds: float = Field(default=2.0, gt=0)
    # A running job whose worker has not reported for this long is retried, or failed after
    # AI_JOB_MAX_ATTEMPTS tries.
    ai_job_stale_seconds: int = Field(default=300, ge=10)
    ai_job_max_attempts: int = Field(default=2, ge=1)
    # An analysis queued by an upload starts once no instance has come to its study for this
    # long: a modality sends a series one instance at a time (C-STORE), and an analysis of
    # part of it would be wasted (one that ends with instances added since it began runs
    # again, whatever this is).
    ai_settle_seconds: int = Field(default=10, ge=0)
    # Optional rephrasing of the draft by a language model behind an OpenAI-compatible HTTP
    # endpoint (e.g. http://127.0.0.1:8080/v1); off when empty. Without it the template draft
    # stands.
    ai_llm_url: str = ""
    ai_llm_model: str = ""
    ai_llm_timeout_seconds: float = Field(default=30.0, gt=0)

    # Create the documented demo users on an empty database (development only).
    seed_demo_data: bool = True
    # Apply pending Alembic migrations when the app starts.
    migrate_on_start: bool = True

    # Unset: Reflex's defaults (3000 and 8000).
    frontend_port: int | None = None
    backend_port: int | None = None
    # The URL the browser uses to reach the backend (Reflex's api_url). Unset: Reflex's,
    # http://localhost: and the backend port `reflex run` was given (--backend-port, or
    # BACKEND_PORT); the pages read it through ``pacs_app.ui.routes.api_base``.
    api_url: str | None = None
    # The address DICOMweb clients reach this server at (https://pacs.example.org), where a
    # reverse proxy in front would otherwise give the wrong scheme or host: Retrieve URLs and
    # BulkDataURIs are built under it. Unset: under the host each request names.
    public_url: str | None = None
    # How many reverse proxies stand in front (each appending to X-Forwarded-For), so that
    # sign-in throttling and the audit see the client's address, not the proxy's. 0: the
    # header is ignored (a client could write anything in it).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)

    # The DICOM listener (C-STORE, C-ECHO): its port (unset: none), its AE title, and the
    # address it binds. It accepts only registered devices (pacs_app.services.devices).
    dicom_port: int | None = Field(default=None, ge=1, le=65535)
    dicom_ae_title: str = Field(
        default="PACS", pattern=AE_TITLE_PATTERN, max_length=AE_TITLE_MAX_LENGTH
    )
    # every interface: modalities call from the network (only registered devices are let in)
    dicom_bind_address: str = "0.0.0.0"  # noqa: S104

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.pacs_env is Environment.PRODUCTION:
            if self.secret_key == DEV_SECRET_KEY:
                raise InsecureConfiguration(
                    "PACS_ENV=production refuses the development SECRET_KEY: set SECRET_KEY to a "
                    'random value of at least 32 characters (e.g. `python -c "import secrets; '
                    'print(secrets.token_urlsafe(48))"`).'
                )
            if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
                raise InsecureConfiguration(
                    f"PACS_ENV=production refuses a SECRET_KEY shorter than "
                    f"{MIN_SECRET_KEY_LENGTH} characters (got {len(self.secret_key)})."
                )
        return self

    @property
    def ingest_process_count(self) -> int:
        if self.ingest_processes is not None:
            return self.ingest_processes
        return 0 if self.backend_worker_count > 1 else min(max(os.cpu_count() or 1, 2), 8)

    @property
    def backend_worker_count(self) -> int:
        """How many backend workers ``reflex run --env prod`` starts: one, or with REDIS_URL
        Reflex's rule (twice the CPUs and one, at most 8)."""
        return min((os.cpu_count() or 1) * 2 + 1, 8) if self.redis_url else 1

    @property
    def database_pool(self) -> tuple[int, int]:
        """Each process's PostgreSQL pool size and overflow: as set, or else 10 and 20 more
        for one backend worker, and for several an even share of 80 connections (a server
        allows 100 unless told otherwise; the rest are for the AI worker, the DICOM listener,
        the ingest processes and administrators)."""
        workers = self.backend_worker_count
        share = 30 if workers == 1 else max(4, 80 // workers)
        size = self.database_pool_size or min(10, share // 2)
        overflow = self.database_max_overflow
        return size, max(0, share - size) if overflow is None else overflow

    @property
    def is_production(self) -> bool:
        return self.pacs_env is Environment.PRODUCTION

    @property
    def demo_data_allowed(self) -> bool:
        return self.seed_demo_data and not self.is_production


settings = Settings()
