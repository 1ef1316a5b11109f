"""The serving engine: one thread owns the model, decodes batches of requests with the KV
cache, and hot-swaps updated value rows between batches.

A batch runs start to finish on one model version, and rows are swapped only while no batch
is decoding, so no request ever mixes two versions; each result carries the version it used.
A swap is a replay of the ledger's new events into the live model (an in-place write of the
changed rows), never a reload.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from model_store.ledger import Ledger
from model_store.state import DeltaMismatch, ModelState
from sparse_memory.generation import decode_steps, stop_ids, tokenize_prompts

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    model_version: int
    tokens: int


@dataclass
class GenerationJob:
    prompt: str  # already rendered (chat template applied where asked)
    max_new_tokens: int
    temperature: float
    on_text: Callable[[str], None] | None = None  # streaming: called with each new piece of text
    future: Future = field(default_factory=Future)


class ServingEngine:
    def __init__(self, state: ModelState, tokenizer, ledger: Ledger, max_batch: int = 8, poll_seconds: float = 2.0):
        self.state = state
        self.tokenizer = tokenizer
        self.ledger = ledger
        self.max_batch = max_batch
        self.poll_seconds = poll_seconds
        self.stops = stop_ids(tokenizer)
        self.generator = torch.Generator(device=next(state.model.parameters()).device).manual_seed(0)
        self._jobs: queue.Queue[GenerationJob] = queue.Queue()
        self._catch_up_wanted = threading.Event()
        self._rows_lock = threading.Lock()  # the served rows change only while it is held
        self._hashed: tuple[int, str] | None = None  # (version, state hash)
        # Called on the serving thread after each swap with its seconds and the versions it applied.
        self.on_swap: Callable[[float, list[int]], None] | None = None
        self._version_changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serving-engine", daemon=True)
        self.tokens_generated = 0
        # Why this replica cannot build the model the ledger describes (a delta missing or altered),
        # or None: while set it serves nothing, and each poll tries again.
        self.failure: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)  # wake the loop
        self._thread.join(timeout=30)

    def waiting(self) -> int:
        """Requests submitted and not yet being decoded (about: wake-ups count too)."""
        return self._jobs.qsize()

    def submit(self, job: GenerationJob) -> Future:
        self._jobs.put(job)
        return job.future

    def state_hash(self) -> str:
        """SHA-256 of the served value tables (``ModelState.state_hash``), computed once per model
        version: hashing a large memory's tables takes seconds. A swap waits for it to finish."""
        with self._rows_lock:
            if self._hashed is None or self._hashed[0] != self.state.version:
                self._hashed = (self.state.version, self.state.state_hash())
            return self._hashed[1]

    def request_catch_up(self, _version: int | None = None) -> None:
        """Read the ledger for new events before the next batch (called on an event or a rollback).

        The new deltas are read here, on the caller's thread, so decoding pauses only for the
        in-place write of the rows."""
        try:
            self.state.prefetch(self.ledger)
        except Exception:  # the swap reads them itself then
            log.warning("prefetching update deltas failed", exc_info=True)
        self._catch_up_wanted.set()
        self._jobs.put(None)  # wake the loop if it is waiting for work

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Block until the served model is at ``version`` or later."""
        deadline = time.monotonic() + timeout
        with self._version_changed:
            while self.state.version < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._version_changed.wait(left)
        return True

    # -- the engine thread -----------------------------------------------------------------
    def _run(self) -> None:
        last_poll = 0.0
        while not self._stop.is_set():
            try:
                first = self._jobs.get(timeout=self.poll_seconds)
            except queue.Empty:
                first = None
            if self._catch_up_wanted.is_set() or time.monotonic() - last_poll >= self.poll_seconds:
                self._catch_up_wanted.clear()
                last_poll = time.monotonic()
                self.catch_up()
            jobs = [first] if first is not None else []
            while len(jobs) < self.max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    jobs.append(job)
            if jobs:
                self._decode(jobs)

    def catch_up(self) -> None:
        """Replay the ledger's new events into the served model (on the serving thread, or before it starts)."""
        started = time.perf_counter()
        try:
            with self._rows_lock:
                applied = self.state.catch_up(self.ledger)
        except DeltaMismatch as error:
            if self.failure != str(error):
                log.error("this replica stops serving: %s", error)
            self.failure = str(error)
            return
        except Exception:  # the ledger is unreachable for a moment: keep serving, retry on the next poll
            log.warning("catching up with the ledger failed", exc_info=True)
            return
        if self.failure is not None:
            log.info("the model is whole again: serving")
            self.failure = None
        if applied:
            log.info("model now at version %s", self.state.version)
            if self.on_swap is not None:
                try:
                    self.on_swap(time.perf_counter() - started, applied)
                except Exception:  # a metric is never a reason to stop serving
                    log.warning("recording the swap to version %s failed", self.state.version, exc_info=True)
            with self._version_changed:
                self._version_changed.notify_all()

    def _decode(self, jobs: list[GenerationJob]) -> None:
        version = self.state.version
        emitted = [""] * len(jobs)  # what each streaming request has been sent so far
        try:
            device = next(self.state.model.parameters()).device
            batch = tokenize_prompts(self.tokenizer, [job.prompt for job in jobs], device)
            temperatures = torch.tensor([job.temperature for job in jobs], device=device)
            longest = max(job.max_new_tokens for job in jobs)
            generated: list[list[int]] = [[] for _ in jobs]
            finished = [False] * len(jobs)
            steps = decode_steps(
                self.state.model, batch["input_ids"], batch["attention_mask"], longest, temperatures, self.generator
            )
            for step_tokens in steps:
                for row, token in enumerate(step_tokens.tolist()):
                    if finished[row]:
                        continue
                    if token in self.stops:
                        finished[row] = True
                        continue
                    generated[row].append(token)
                    finished[row] = len(generated[row]) >= jobs[row].max_new_tokens
                    if jobs[row].on_text is not None:
                        text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
                        if len(text) > len(emitted[row]) and not text.endswith("\ufffd"):  # whole characters only
                            finished[row] = not _stream(jobs[row], text[len(emitted[row]) :]) or finished[row]
                            emitted[row] = text
                if all(finished):
                    break
            for job, tokens, sent in zip(jobs, generated, emitted, strict=True):
                if job.future.done():  # its stream failed
                    continue
                self.tokens_generated += len(tokens)
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                if job.on_text is not None and len(text) > len(sent) and not _stream(job, text[len(sent) :]):
                    continue
                job.future.set_result(Completion(text.strip(), version, len(tokens)))
        except Exception as error:
            if len(jobs) > 1:  # one request may be what failed: each alone, so that only it fails
                log.warning("a batch of %d requests failed (%s); decoding each alone", len(jobs), error)
                for job, sent in zip(jobs, emitted, strict=True):
                    if not job.future.done():
                        if sent:  # part of its answer is out: it cannot start again
                            job.future.set_exception(error)
                        else:
                            self._decode([job])
                return
            log.exception("generation failed")
            if not jobs[0].future.done():
                jobs[0].future.set_exception(error)


def _stream(job: GenerationJob, text: str) -> bool:
    """Hand a piece of text to a streaming request; False (and the request failed) where its
    receiver raised, so that one request's broken stream never fails the batch it shares."""
    try:
        job.on_text(text)
    except Exception as error:
        log.warning("streaming to a request failed: %s", error)
        job.future.set_exception(error)
        return False
    return True
