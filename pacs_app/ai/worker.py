"""The AI worker: claims queued jobs from the database and runs the pipeline.

``pacs worker`` runs one (on any machine that shares the database and the storage); ``reflex
run`` starts one of its own as a child process (``AI_EMBEDDED_WORKER``; one per machine,
whatever the number of backend workers), so the web process never imports torch. Several
workers may run at once: claiming never gives one job to two.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from sqlmodel import Session

from pacs_app.config import settings
from pacs_app.core import db, logs
from pacs_app.core.children import parent_gone, start_child
from pacs_app.core.errors import DomainError
from pacs_app.models import AIJob
from pacs_app.services import ai
from pacs_app.storage import Storage, get_storage

log = logging.getLogger("pacs.ai.worker")


class _Heartbeat(threading.Thread):
    """Reports that the job is alive while the pipeline runs (its own session)."""

    def __init__(self, job_id: int, worker: str, url: str | None):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.worker, self.url = job_id, worker, url
        self.stop = threading.Event()
        self.interval = max(1.0, settings.ai_job_stale_seconds / 5)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                with db.session_scope(self.url) as session:
                    if not ai.heartbeat(session, self.job_id, worker=self.worker):
                        return
            except Exception:  # a missed beat is retried at the next interval
                log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)


def process(
    session: Session, job: AIJob, storage: Storage, *, worker: str, url: str | None = None
) -> str:
    """Run one claimed job to its end: done, done with warnings, or failed with a reason."""
    from pacs_app.ai.pipeline import analyse

    beat = _Heartbeat(job.id, worker, url)
    beat.start()
    started = time.perf_counter()
    try:
        outcome = analyse(session, job, storage)
    except DomainError as exc:
        session.rollback()
        ai.fail(session, job.id, exc.message, worker=worker)
        log.info("job %s failed: %s", job.id, exc.code)
        return "failed"
    except Exception as exc:  # never let one study stop the worker
        session.rollback()
        log.exception("job %s crashed", job.id)
        ai.fail(
            session,
            job.id,
            f"The analysis stopped on an unexpected error ({type(exc).__name__}: {exc}).",
            worker=worker,
        )
        return "failed"
    finally:
        beat.stop.set()
    outcome.timings["total"] = round(time.perf_counter() - started, 3)
    completion = ai.complete(session, job.id, outcome, worker=worker)
    if completion is ai.Completion.LOST:
        log.warning("job %s was taken from this worker; its result is dropped", job.id)
        return "lost"
    if completion is ai.Completion.REQUEUED:
        log.info("job %s queued again: its study received instances meanwhile", job.id)
        return "requeued"
    log.info("job %s finished in %.1f s on %s", job.id, outcome.timings["total"], outcome.device)
    return "done"


def run_once(*, url: str | None = None, storage: Storage | None = None) -> str | None:
    """Recover stale jobs, then claim and run one job. Returns its end, or None if idle."""
    worker = ai.worker_name()
    storage = storage or get_storage()
    with db.session_scope(url) as session:
        ai.recover_stale(session)
        job = ai.claim_next(session, worker=worker)
        if job is None:
            return None
        log.info("job %s claimed by %s", job.id, worker)
        return process(session, job, storage, worker=worker, url=url)


def run_forever(*, parent_pid: int | None = None, url: str | None = None) -> None:
    stopping = threading.Event()

    def stop(_signum, _frame):
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("AI worker %s polling every %ss", ai.worker_name(), settings.ai_worker_poll_seconds)
    while not stopping.is_set():
        if parent_gone(parent_pid):
            log.info("the app that started this worker has stopped; stopping too")
            return
        try:
            ran = run_once(url=url)
        except Exception:  # the database may be restarting: wait and try again
            log.exception("worker loop error")
            ran = None
        if ran is None:
            stopping.wait(settings.ai_worker_poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pacs worker", description=__doc__)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--once", action="store_true", help="run at most one job and exit")
    args = parser.parse_args(argv)
    logs.configure()
    if args.once:
        print(run_once() or "idle")
        return 0
    run_forever(parent_pid=args.parent_pid)
    return 0


def start_embedded() -> object | None:
    """Start the worker as a child of the web process (returns the Popen, or None). Of
    several backend workers' embedded AI workers, one runs at a time on a machine (each
    would load the models); the others stand by to take over."""
    if not settings.ai_embedded_worker:
        return None
    log.info("starting the embedded AI worker")
    return start_child("pacs_app.ai.worker", one_per_app="the embedded AI worker")


if __name__ == "__main__":
    sys.exit(main())
