"""Everything one API process runs: the ledger, the served model, the engine, and the way
learn work leaves the process (Celery on Redis) or stays in it (the embedded default)."""

from __future__ import annotations

import copy
import logging
import queue
import threading

from app.engine import ServingEngine
from model_store.checkpoint import load_checkpoint
from model_store.events import RedisEvents
from model_store.ledger import Ledger
from model_store.settings import ServiceSettings
from model_store.state import DeltaStore, ModelState

log = logging.getLogger(__name__)


class QueueUnreachable(RuntimeError):
    """A recorded update could not be handed to the learn queue (the Celery broker)."""


class LocalWorker:
    """The embedded default's worker: a thread in the API process that learns queued updates."""

    def __init__(self, learner):
        self.learner = learner
        self._ids: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="local-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._ids.put(None)
        self._thread.join(timeout=120)

    def enqueue(self, update_id: int) -> None:
        self._ids.put(update_id)

    def _run(self) -> None:
        while (update_id := self._ids.get()) is not None:
            try:
                self.learner.process(update_id)
            except Exception:  # the update is marked failed by the learner; keep serving the rest
                log.exception("learning update %s failed", update_id)


class Service:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.ledger = Ledger(settings.ledger_url())
        self.ledger.migrate()
        self.checkpoint, model, self.tokenizer, stats = load_checkpoint(settings, log=log.info)
        learner_model = None if settings.redis_url else copy.deepcopy(model)  # before any update is replayed
        self.state = ModelState(model, DeltaStore(settings.data_dir / "updates"))
        self.engine = ServingEngine(self.state, self.tokenizer, self.ledger, settings.max_batch, settings.poll_seconds)
        self.engine.catch_up()  # a restart replays the ledger: the same model as before, or none
        self._stop_events = threading.Event()
        self.local_worker: LocalWorker | None = None
        if settings.redis_url:
            from worker.celery_app import make_celery

            self.events = RedisEvents(settings.redis_url, settings.queue_name)
            self.celery = make_celery(settings)
        else:
            from worker.learning import Learner

            self.events = None
            learner = Learner(
                settings,
                self.ledger,
                learner_model,
                # Its own tokenizer: the Rust tokenizer's padding and truncation state is changed by
                # each call, and two threads calling one at once fail ("Already borrowed").
                copy.deepcopy(self.tokenizer),
                stats,
                publish=self.engine.request_catch_up,
                base=self.state.base,  # one copy of the base rows for the two models
            )
            self.local_worker = LocalWorker(learner)

    def start(self) -> None:
        self.engine.start()
        if self.events is not None:
            self.events.listen(self.engine.request_catch_up, self._stop_events)
        if self.local_worker is not None:
            self.local_worker.start()
            # Updates left queued (or running) when the process stopped are learned now.
            for update_id in self.ledger.pending_ids():
                self.local_worker.enqueue(update_id)

    def stop(self) -> None:
        self._stop_events.set()
        if self.local_worker is not None:
            self.local_worker.stop()
        self.engine.stop()

    def enqueue(self, update_id: int) -> None:
        if self.local_worker is not None:
            self.local_worker.enqueue(update_id)
            return
        try:
            self.celery.send_task("sparse_memory.learn", args=[update_id], queue=self.settings.queue_name)
        except Exception as error:  # kombu raises its own OperationalError, among others
            # The update stays queued in the ledger: a worker learns it with the next update, or
            # when it starts, so nothing is lost; the caller hears why it is not learning yet.
            raise QueueUnreachable(
                f"update {update_id} is recorded and queued, but the learn queue at {self.settings.redis_url} "
                f"could not be reached ({type(error).__name__}: {error}); it is learned when a worker "
                "starts or with the next update. Check that Redis and a worker are running; sending the "
                "request again with the same Idempotency-Key header returns this update instead of a new one"
            ) from error

    def announce(self, version: int) -> None:
        """The model moved (a rollback here): this process swaps now, the others on the event."""
        self.engine.request_catch_up()
        if self.events is not None:
            self.events.publish(version)
