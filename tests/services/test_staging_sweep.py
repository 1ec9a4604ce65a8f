"""The staging folder does not keep abandoned uploads forever."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from pacs_app.services import uploads


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_abandoned_uploads_older_than_a_day_are_removed_and_fresh_ones_kept(storage_root):
    staging = uploads.staging_root()
    crashed = staging / "post-0123456789abcdef-000001"  # POST /studies, before a crash
    crashed.write_bytes(b"DICM")
    batch = staging / ("a" * 32)  # a web batch never committed
    (batch / "files").mkdir(parents=True)
    (batch / "files" / "000001").write_bytes(b"DICM")
    in_progress = staging / "post-fedcba9876543210-000001"
    in_progress.write_bytes(b"DICM")
    _age(crashed, uploads.STALE_AFTER_S + 60)
    _age(batch, uploads.STALE_AFTER_S + 60)
    _age(in_progress, 60)

    assert uploads.sweep_stale() == 2
    assert sorted(p.name for p in staging.iterdir()) == [in_progress.name]

    assert uploads.sweep_stale(now=time.time() + uploads.STALE_AFTER_S) == 1
    assert list(staging.iterdir()) == []


def test_the_app_sweeps_when_it_starts(storage_root, monkeypatch):
    import asyncio

    from pacs_app import pacs_app

    swept = []
    monkeypatch.setattr(uploads, "sweep_stale", lambda: swept.append(True))

    async def first_round():
        task = asyncio.create_task(pacs_app._sweep_staging_hourly())
        while not swept:
            await asyncio.sleep(0.01)
        task.cancel()

    # in a thread of its own: the browser tests' Playwright keeps a loop running in this one
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, asyncio.wait_for(first_round(), 10)).result()
    assert swept == [True]
