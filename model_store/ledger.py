"""The ledger: every update ever asked for, and the ordered log of model events.

``updates`` holds one row per POST /learn: its documents, options, status and, once applied,
what it changed (slots, scores, delta norm) and its retention probe. ``model_events`` is the
append-only log that defines the serving model: event n (the model version) either applies
an update's delta or rolls one back. Any process rebuilds the model from the base checkpoint
and this log, and catches up by reading the events after the version it has.

Event ids must become visible in increasing order, or a replica reading "events after n"
could skip one committed late. Writers therefore serialise on a lock (PostgreSQL: a
transaction-level advisory lock; SQLite: the database's single writer lock).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

STATUSES = ("queued", "running", "applied", "failed", "rejected", "rolled_back", "superseded")
PENDING = ("queued", "running")  # not learned yet (running: maybe left by a worker that died)
FINISHED = ("applied", "failed", "rejected", "rolled_back", "superseded")
EVENT_LOCK_KEY = 7_304_221  # PostgreSQL advisory lock: writers of model_events
LEARNER_LOCK_KEY = 7_304_222  # PostgreSQL advisory lock: the one learner per model
MIGRATION_LOCK_KEY = 7_304_223  # PostgreSQL advisory lock: one process migrates at a time


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Update(Base):
    __tablename__ = "updates"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused after a delete

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    rolled_back_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    documents: Mapped[list] = mapped_column(JSON)  # [{"text", "sha256", "qa": [{"question", "answer"}]}]
    options: Mapped[dict] = mapped_column(JSON)  # {"top_t", "steps", "lr"}, defaults filled in
    slots: Mapped[list | None] = mapped_column(JSON)
    scores: Mapped[list | None] = mapped_column(JSON)
    delta_norm: Mapped[float | None] = mapped_column(Float)
    loss_before: Mapped[float | None] = mapped_column(Float)
    loss_after: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[int | None]
    model_version: Mapped[int | None]  # the version whose event applied this update
    probe: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # A later update that corrects this one rolls it back and learns again what it left standing.
    supersedes: Mapped[list | None] = mapped_column(JSON)  # ids of the updates this one superseded
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("updates.id"))
    # Of its delta file: a replica replays a delta only if it is the one learned (None: before 0003).
    delta_sha256: Mapped[str | None] = mapped_column(String(64))


class ModelEvent(Base):
    __tablename__ = "model_events"
    __table_args__ = {"sqlite_autoincrement": True}

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    update_id: Mapped[int] = mapped_column(ForeignKey("updates.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # "apply" | "rollback"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnknownUpdate(LookupError):
    pass


class NotApplied(RuntimeError):
    pass


class Ledger:
    """The SQL side of the model store, for PostgreSQL or SQLite alike."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 30, "check_same_thread": False} if self.is_sqlite else {}
        self.engine: Engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op when it is there).

        API and worker processes start together: they take turns, so only the first creates
        the tables and the others find them at the newest revision."""
        from model_store.migrate import upgrade

        with self._exclusive("migrate", MIGRATION_LOCK_KEY):
            upgrade(self.url)

    @contextlib.contextmanager
    def _exclusive(self, name: str, key: int, lock_dir: Path | None = None) -> Iterator[None]:
        """A lock across processes: a file lock beside a SQLite ledger, else a PostgreSQL
        advisory lock held on a connection of its own."""
        if self.is_sqlite:
            directory = lock_dir or Path(self.url.removeprefix("sqlite:///")).parent
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / f"{name}.lock", "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.engine.connect() as connection:
            connection.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(key)))
                connection.commit()

    @contextlib.contextmanager
    def _writing_events(self) -> Iterator[Session]:
        """A transaction in which model_events may be appended, in visible order."""
        with self.sessions.begin() as session:
            if not self.is_sqlite:  # SQLite has one writer at a time already
                session.execute(select(func.pg_advisory_xact_lock(EVENT_LOCK_KEY)))
            yield session

    # -- updates ---------------------------------------------------------------------------
    def create_update(self, documents: list[dict], options: dict, idempotency_key: str | None = None) -> Update:
        """A new queued update, or the existing one with the same idempotency key."""
        with self.sessions.begin() as session:
            if idempotency_key is not None:
                existing = session.scalar(select(Update).where(Update.idempotency_key == idempotency_key))
                if existing is not None:
                    return existing
            update = Update(documents=documents, options=options, idempotency_key=idempotency_key, status="queued")
            session.add(update)
            session.flush()
            return update

    def by_idempotency_key(self, idempotency_key: str) -> Update | None:
        with self.sessions() as session:
            return session.scalar(select(Update).where(Update.idempotency_key == idempotency_key))

    def get(self, update_id: int) -> Update:
        with self.sessions() as session:
            update = session.get(Update, update_id)
        if update is None:
            raise UnknownUpdate(f"no update with id {update_id}")
        return update

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Update], int]:
        """Newest first."""
        with self.sessions() as session:
            query = select(Update)
            counting = select(func.count()).select_from(Update)
            if status is not None:
                query, counting = query.where(Update.status == status), counting.where(Update.status == status)
            items = session.scalars(query.order_by(Update.id.desc()).limit(limit).offset(offset)).all()
            return list(items), int(session.scalar(counting))

    def next_queued(self, up_to: int | None = None) -> Update | None:
        """The oldest update still waiting (or left running by a worker that died)."""
        with self.sessions() as session:
            query = select(Update).where(Update.status.in_(PENDING))
            if up_to is not None:
                query = query.where(Update.id <= up_to)
            return session.scalars(query.order_by(Update.id).limit(1)).first()

    def pending_ids(self) -> list[int]:
        """Updates not finished yet, oldest first."""
        with self.sessions() as session:
            query = select(Update.id).where(Update.status.in_(PENDING)).order_by(Update.id)
            return list(session.scalars(query))

    def stranded_id(self, older_than: timedelta) -> int | None:
        """The newest update queued more than ``older_than`` ago, while no update is running: a
        learn request whose task never reached the queue (or None). Learning it learns every
        queued update before it."""
        with self.sessions() as session:
            if session.scalar(select(Update.id).where(Update.status == "running").limit(1)) is not None:
                return None
            query = select(Update.id).where(Update.status == "queued", Update.created_at < utcnow() - older_than)
            return session.scalar(query.order_by(Update.id.desc()).limit(1))

    def mark_running(self, update_id: int) -> None:
        with self.sessions.begin() as session:
            update = session.get(Update, update_id)
            update.status, update.started_at, update.error = "running", utcnow(), None

    def finish(self, update_id: int, status: str, supersedes: list[int] = (), **fields) -> Update:
        """Record a learned update: ``applied`` also appends its apply event (a new version),
        after a rollback event for each update in ``supersedes`` still applied (those become
        ``superseded``), in one transaction."""
        if status not in ("applied", "failed", "rejected"):
            raise ValueError(f"an update cannot finish as {status!r}")
        with self._writing_events() as session:
            update = session.get(Update, update_id)
            for name, value in fields.items():
                setattr(update, name, value)
            update.status = status
            if status == "applied":
                superseded = []
                for earlier_id in supersedes:
                    earlier = session.get(Update, earlier_id)
                    if earlier.status != "applied":  # rolled back meanwhile: nothing left to supersede
                        continue
                    event = ModelEvent(update_id=earlier_id, action="rollback")
                    session.add(event)
                    session.flush()
                    earlier.status, earlier.rolled_back_at, earlier.superseded_by = (
                        "superseded",
                        event.created_at,
                        update_id,
                    )
                    superseded.append(earlier_id)
                update.supersedes = superseded or None
                event = ModelEvent(update_id=update_id, action="apply")
                session.add(event)
                session.flush()
                update.applied_at, update.model_version = event.created_at, event.version
            return update

    def rollback(self, update_id: int) -> tuple[Update, int]:
        """Turn an applied update inactive, and the updates it superseded active again; returns
        it and the model version after its events."""
        with self._writing_events() as session:
            update = session.get(Update, update_id)
            if update is None:
                raise UnknownUpdate(f"no update with id {update_id}")
            if update.status != "applied":
                raise NotApplied(f"update {update_id} is {update.status}; only an applied update can be rolled back")
            event = ModelEvent(update_id=update_id, action="rollback")
            session.add(event)
            session.flush()
            update.status, update.rolled_back_at = "rolled_back", event.created_at
            for earlier_id in update.supersedes or []:
                earlier = session.get(Update, earlier_id)
                if earlier.status == "superseded" and earlier.superseded_by == update_id:
                    event = ModelEvent(update_id=earlier_id, action="apply")
                    session.add(event)
                    session.flush()
                    earlier.status, earlier.superseded_by, earlier.rolled_back_at = "applied", None, None
                    earlier.applied_at, earlier.model_version = event.created_at, event.version
            return update, event.version

    # -- events ----------------------------------------------------------------------------
    def events_after(self, version: int) -> list[ModelEvent]:
        with self.sessions() as session:
            return list(session.scalars(select(ModelEvent).where(ModelEvent.version > version).order_by("version")))

    def delta_hashes(self, update_ids: Iterable[int]) -> dict[int, str]:
        """The recorded SHA-256 of these updates' delta files (those that have one)."""
        ids = sorted(set(update_ids))
        if not ids:
            return {}
        with self.sessions() as session:
            query = select(Update.id, Update.delta_sha256).where(Update.id.in_(ids), Update.delta_sha256.is_not(None))
            return {update_id: sha for update_id, sha in session.execute(query)}

    def latest_version(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.coalesce(func.max(ModelEvent.version), 0))))

    # -- the learner lock ------------------------------------------------------------------
    def learner_lock(self, lock_dir: Path):
        """One learner per model across processes: updates are learned one at a time, in id order."""
        return self._exclusive("learner", LEARNER_LOCK_KEY, lock_dir)
