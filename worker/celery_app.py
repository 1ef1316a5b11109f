"""Celery app of the production layout: learn tasks on a Redis broker.

The task is thin glue: all state lives in the ledger and the update store, so a task that
runs twice (``acks_late`` redelivers after a crash) finds its update finished and does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from celery import Celery

from model_store.settings import ServiceSettings

log = logging.getLogger(__name__)


def make_celery(settings: ServiceSettings) -> Celery:
    app = Celery("sparse_memory", broker=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_acks_late=True,  # a learn that dies with its worker is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one learner, one task at a time
        task_ignore_result=True,  # results live in the ledger
        broker_connection_retry_on_startup=True,
    )
    return app


settings = ServiceSettings()
celery_app = make_celery(settings)
_learner = None


def learner():
    """The process's learner, loaded on the first task (the model stays in memory)."""
    global _learner
    if _learner is None:
        from model_store.checkpoint import load_checkpoint
        from model_store.events import RedisEvents
        from model_store.ledger import Ledger
        from worker.learning import Learner

        ledger = Ledger(settings.ledger_url())
        ledger.migrate()
        _, model, tokenizer, stats = load_checkpoint(settings, log=log.info)
        events = RedisEvents(settings.redis_url, settings.queue_name)
        _learner = Learner(settings, ledger, model, tokenizer, stats, publish=events.publish)
    return _learner


@celery_app.task(name="sparse_memory.learn")
def learn_update(update_id: int) -> str:
    return learner().process(update_id).status


def sweep_stranded(ledger, send, older_than: timedelta) -> int | None:
    """Send a learn task for the newest update left queued while none is running (its own task
    never reached the queue: the API could not reach the broker); returns its id, or None."""
    stranded = ledger.stranded_id(older_than)
    if stranded is not None:
        log.warning("update %s was queued but never reached the learn queue: learning it now", stranded)
        send(stranded)
    return stranded


def _sweep_forever() -> None:
    every = timedelta(seconds=settings.sweep_seconds)

    def send(update_id: int) -> None:
        celery_app.send_task("sparse_memory.learn", args=[update_id], queue=settings.queue_name)

    while True:
        time.sleep(settings.sweep_seconds)
        try:
            sweep_stranded(learner().ledger, send, every)
        except Exception:  # the ledger or the broker is down for now: the next sweep tries again
            log.warning("sweeping for stranded updates failed", exc_info=True)


def run_worker() -> None:
    """``sparse-memory worker``: one process, one learner (solo pool), loaded before the first task."""
    if not settings.redis_url:
        raise SystemExit("sparse-memory worker needs REDIS_URL (the Celery broker); without it the API learns itself")
    # Updates left queued while no worker ran, or whose task never reached the broker, are learned
    # first (process learns every queued update up to the one given, in id order).
    pending = learner().ledger.pending_ids()
    if pending:
        log.info("learning %d updates queued before this worker started", len(pending))
        learner().process(pending[-1])
    # The task of an update whose broker send failed is sent again from here once it has waited a
    # sweep interval while the worker idles; a task sent twice finds its update finished.
    threading.Thread(target=_sweep_forever, name="sweep", daemon=True).start()
    celery_app.worker_main(["worker", "--pool=solo", "--loglevel=INFO", "-Q", settings.queue_name])
