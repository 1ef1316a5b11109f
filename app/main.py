"""The HTTP API (FastAPI; the OpenAPI page is at /docs).

POST /learn queues an update; GET /updates shows what each update changed; any applied
update can be rolled back; POST /generate answers with the current model and says which
version it used. ``uvicorn app.main:app`` or ``sparse-memory serve`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.engine import GenerationJob
from app.schemas import (
    GenerateRequest,
    GenerateResponse,
    LearnAccepted,
    LearnRequest,
    UpdateList,
    UpdateOut,
)
from app.service import QueueUnreachable, Service
from model_store.ledger import STATUSES, NotApplied, UnknownUpdate, Update
from model_store.settings import ServiceSettings
from sparse_memory.generation import render_messages
from worker.learning import document_record

log = logging.getLogger(__name__)
SWAP_WAIT_SECONDS = 10.0  # a rollback answers once this process serves the rolled-back model
LEARN_RETRY_SECONDS = 30  # about what one update takes to learn on a CPU


def same_request(update: Update, documents: list[dict], asked: dict) -> bool:
    """Whether ``update`` is what a learn request of ``documents`` and the options it ``asked`` for
    records: the same texts and QA pairs (learning adds pieces and carried text to the stored
    documents), and each option asked for as stored."""

    def said(records: list[dict]) -> list[tuple]:
        return [(record["sha256"], record["qa"]) for record in records]

    return said(update.documents) == said(documents) and all(update.options.get(k) == v for k, v in asked.items())


class BodySizeLimit:
    """ASGI middleware: a request whose body is over ``max_bytes`` is answered 413 and never read
    whole, whether it declares its length or arrives in chunks."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"the request body is {size} bytes; at most {self.max_bytes} are taken: send fewer or shorter documents"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": self._too_large(declared.decode())}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # raised where the route reads its body: answered as an HTTP error
                raise HTTPException(413, self._too_large(f"over {self.max_bytes}"))
            return message

        await self.app(scope, counted, send)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    registry = CollectorRegistry()
    requests = Counter("sparse_memory_requests", "HTTP requests by route", ["route"], registry=registry)
    learned = Counter("sparse_memory_learn_requests", "Updates queued", registry=registry)
    rollbacks = Counter("sparse_memory_rollbacks", "Updates rolled back", registry=registry)
    version_gauge = Gauge("sparse_memory_model_version", "Model version served", registry=registry)
    tokens_gauge = Gauge("sparse_memory_generated_tokens", "Tokens generated since start", registry=registry)
    generation_seconds = Histogram(
        "sparse_memory_generation_seconds",
        "Seconds from a generation request to its last token",
        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        registry=registry,
    )
    swap_seconds = Histogram(
        "sparse_memory_swap_seconds",
        "Seconds the serving thread took to bring new model versions into service",
        buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        registry=registry,
    )
    learn_seconds = Histogram(
        "sparse_memory_learn_seconds",
        "Seconds each update this replica began serving took to learn (started to applied)",
        buckets=(5, 10, 15, 30, 60, 120, 300, 600, 1800),
        registry=registry,
    )
    pending_gauge = Gauge("sparse_memory_pending_updates", "Updates queued or being learned", registry=registry)
    written_gauge = Gauge(
        "sparse_memory_slots_written", "Memory slots active updates wrote or reserved", ["layer"], registry=registry
    )
    free_gauge = Gauge(
        "sparse_memory_slots_free", "Memory slots no active update wrote or reserved", ["layer"], registry=registry
    )
    probe_gauge = Gauge(
        "sparse_memory_retention_probe", "Retention probe score after the latest applied update", registry=registry
    )

    def observe_swap(ledger, seconds: float, versions: list[int]) -> None:
        swap_seconds.observe(seconds)
        for event in ledger.events_after(min(versions) - 1):
            if event.version in versions and event.action == "apply":
                update = ledger.get(event.update_id)
                if update.started_at is not None and update.applied_at is not None:
                    learn_seconds.observe((update.applied_at - update.started_at).total_seconds())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = await asyncio.to_thread(Service, settings)
        service.engine.on_swap = lambda seconds, versions: observe_swap(service.ledger, seconds, versions)
        service.start()
        app.state.service = service
        yield
        await asyncio.to_thread(service.stop)

    app = FastAPI(title="sparse-memory", summary="A language model that keeps learning", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    def service_of(request: Request) -> Service:
        return request.app.state.service

    @app.post("/learn", status_code=202, response_model=LearnAccepted)
    def learn(
        body: LearnRequest, request: Request, idempotency_key: str | None = Header(default=None, max_length=200)
    ) -> LearnAccepted:
        requests.labels("learn").inc()
        service = service_of(request)
        most = service.settings.max_document_chars
        for index, document in enumerate(body.documents):
            if len(document.text) > most:
                raise HTTPException(
                    413,
                    f"documents[{index}].text has {len(document.text)} characters; at most {most} are taken per "
                    "document: split it into several documents",
                )
        asked = body.options.model_dump(exclude_none=True) if body.options else {}
        options = service.settings.learning_defaults() | asked
        slots = service.state.model.memory_config.n_slots
        if options["top_t"] > slots:
            raise HTTPException(422, f"options.top_t is {options['top_t']}; this memory has {slots} slots per layer")
        if options["top_t"] * options["reserve"] > slots:
            raise HTTPException(
                422,
                f"options.top_t x options.reserve is {options['top_t'] * options['reserve']}; "
                f"this memory has {slots} slots per layer: lower reserve",
            )
        documents = [
            document_record(d.text, [qa.model_dump() for qa in d.qa] if d.qa else None) for d in body.documents
        ]
        known = service.ledger.by_idempotency_key(idempotency_key) if idempotency_key is not None else None
        if known is None and len(service.ledger.pending_ids()) >= service.settings.max_pending_updates:
            raise HTTPException(
                429,
                f"{service.settings.max_pending_updates} updates are waiting to be learned already: "
                "send this one again later",
                headers={"Retry-After": str(LEARN_RETRY_SECONDS)},
            )
        update = service.ledger.create_update(documents, options, idempotency_key)
        if idempotency_key is not None and not same_request(update, documents, asked):
            raise HTTPException(
                409,
                f"Idempotency-Key {idempotency_key!r} was used for update {update.id}, whose documents or options "
                "differ from this request's: send a new key for a new request",
            )
        if update.status == "queued":
            try:
                service.enqueue(update.id)  # re-enqueueing a repeated key is harmless: a finished update is skipped
            except QueueUnreachable as error:
                detail = {"update_id": update.id, "status": update.status, "reason": str(error)}
                raise HTTPException(503, detail) from error
            learned.inc()
        return LearnAccepted(update_id=update.id, status=update.status)

    @app.get("/updates", response_model=UpdateList)
    def list_updates(
        request: Request,
        status: str | None = Query(default=None, description=f"one of {', '.join(STATUSES)}"),
        limit: int = Query(default=50, ge=1, le=1000),
        offset: int = Query(default=0, ge=0),
    ) -> UpdateList:
        requests.labels("updates").inc()
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status {status!r} is not one of {', '.join(STATUSES)}")
        items, total = service_of(request).ledger.list(status, limit, offset)
        return UpdateList(items=[UpdateOut.of(u) for u in items], total=total)

    @app.get("/updates/{update_id}", response_model=UpdateOut)
    def get_update(update_id: int, request: Request) -> UpdateOut:
        requests.labels("update").inc()
        try:
            return UpdateOut.of(service_of(request).ledger.get(update_id))
        except UnknownUpdate as error:
            raise HTTPException(404, str(error)) from error

    @app.post("/updates/{update_id}/rollback", response_model=UpdateOut)
    def rollback(update_id: int, request: Request) -> UpdateOut:
        requests.labels("rollback").inc()
        service = service_of(request)
        try:
            update, version = service.ledger.rollback(update_id)
        except UnknownUpdate as error:
            raise HTTPException(404, str(error)) from error
        except NotApplied as error:
            raise HTTPException(409, str(error)) from error
        rollbacks.inc()
        service.announce(version)
        service.engine.wait_for_version(version, SWAP_WAIT_SECONDS)
        return UpdateOut.of(update)

    @app.post("/generate", response_model=GenerateResponse)
    async def generate(body: GenerateRequest, request: Request):
        requests.labels("generate").inc()
        service = service_of(request)
        if service.engine.failure is not None:
            raise HTTPException(503, f"this replica is not serving: {service.engine.failure}")
        if service.engine.waiting() >= service.settings.max_waiting_generations:
            raise HTTPException(
                429,
                f"{service.settings.max_waiting_generations} generation requests are waiting already: "
                "send this one again shortly",
                headers={"Retry-After": "1"},
            )
        if body.messages is not None:
            prompt = render_messages(service.tokenizer, [m.model_dump() for m in body.messages])
        else:
            prompt = body.prompt
        started = time.perf_counter()
        if not body.stream:
            job = GenerationJob(prompt, body.max_new_tokens, body.temperature)
            completion = await asyncio.wrap_future(service.engine.submit(job))
            generation_seconds.observe(time.perf_counter() - started)
            return GenerateResponse(text=completion.text, model_version=completion.model_version)

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str] = asyncio.Queue()
        job = GenerationJob(
            prompt,
            body.max_new_tokens,
            body.temperature,
            on_text=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text),
        )
        done = asyncio.wrap_future(service.engine.submit(job))

        async def events():
            while not (done.done() and pieces.empty()):
                try:
                    text = await asyncio.wait_for(pieces.get(), timeout=0.1)
                except TimeoutError:
                    continue
                yield f"data: {json.dumps({'text': text})}\n\n"
            completion = await done
            generation_seconds.observe(time.perf_counter() - started)
            final = {"text": completion.text, "model_version": completion.model_version, "done": True}
            yield f"data: {json.dumps(final)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/model")
    def model_info(request: Request) -> dict:
        requests.labels("model").inc()
        service = service_of(request)
        state = service.state
        return {
            "base": str(service.checkpoint),
            "memory": service.state.model.memory_config.to_dict(),
            "model_version": state.version,
            "active_updates": list(state.active),
            "state_hash": service.engine.state_hash(),
        }

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request):
        service = getattr(request.app.state, "service", None)
        if service is None:
            return JSONResponse({"ready": False, "reason": "model not loaded"}, status_code=503)
        latest = service.ledger.latest_version()
        ready = service.state.version >= latest and service.engine.failure is None
        body = {"ready": ready, "model_version": service.state.version, "ledger_version": latest}
        if service.engine.failure is not None:
            body["reason"] = service.engine.failure
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        service = service_of(request)
        version_gauge.set(service.state.version)
        tokens_gauge.set(service.engine.tokens_generated)
        pending_gauge.set(len(service.ledger.pending_ids()))
        n_slots = service.state.model.memory_config.n_slots
        for layer, written in service.state.written().items():
            taken = int(written.sum())
            written_gauge.labels(str(layer)).set(taken)
            free_gauge.labels(str(layer)).set(n_slots - taken)
        latest, _ = service.ledger.list("applied", 1, 0)
        if latest and latest[0].probe is not None:
            probe_gauge.set(latest[0].probe["after"])
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory app.main:app_from_environment``: settings from the environment."""
    return create_app()
