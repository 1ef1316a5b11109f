"""Benchmarks of the service: ``sparse-memory bench swap`` and ``sparse-memory bench service``.

swap: applying a 500-row update to the serving model (read its delta file, write the rows in
place) against reloading the checkpoint, in the same run. service: a real embedded server on
the default model; for each of 10 made-up facts, the seconds from POST /learn until the
server's answer to a held-out question about it contains the answer.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import torch
from tqdm.auto import tqdm

from app.cli import served_version
from model_store.ledger import PENDING
from model_store.settings import ServiceSettings
from model_store.state import DeltaStore, ModelState
from sparse_memory.data.facts import eval_questions, make_facts, statements, training_questions
from sparse_memory.prepare import load_memory_model, prepare
from sparse_memory.scoring import answer_scores

SWAP_ROWS = 500
SERVICE_FACT_SEED = 4242  # people of their own, not those of bench forgetting


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_swap(quick: bool = False) -> dict:
    settings = ServiceSettings()
    directory = prepare(settings).memory
    device = settings.torch_device()
    model, _ = load_memory_model(directory, device)
    repeats = 20 if quick else 100
    with tempfile.TemporaryDirectory() as scratch:
        state = ModelState(model, DeltaStore(Path(scratch)))
        layer, memory = next(iter(state.memories.items()))
        generator = torch.Generator().manual_seed(0)
        slots = torch.randperm(memory.values.shape[0], generator=generator)[:SWAP_ROWS]
        delta = torch.randn(SWAP_ROWS, memory.values.shape[1], generator=generator) * 1e-3
        sha256 = state.store.save(1, {layer: (slots, delta)})

        def timed(action) -> float:
            started = time.perf_counter()
            action()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return (time.perf_counter() - started) * 1000

        ledger = _OneUpdateLedger(sha256)
        swap_ms, read_ms, rollback_ms = [], [], []
        for _ in tqdm(range(repeats), desc="swap", unit="update"):
            # As the engine does: the delta file is read when the event arrives, off the serving
            # thread; the swap that pauses decoding is the in-place write of the rows.
            read_ms.append(timed(lambda: state.prefetch(ledger)))
            swap_ms.append(timed(lambda: state.apply(1)))
            rollback_ms.append(timed(lambda: state.roll_back(1)))
        base_again = torch.equal(memory.values, state.base[layer])
    reload_ms = []
    for _ in tqdm(range(3 if quick else 5), desc="reload", unit="load"):
        started = time.perf_counter()
        reloaded, _ = load_memory_model(directory, device)
        reload_ms.append((time.perf_counter() - started) * 1000)
        del reloaded
    swap_p50, reload_p50 = statistics.median(swap_ms), statistics.median(reload_ms)
    return {
        "rows": SWAP_ROWS,
        "device": str(device),
        "swap_ms_p50": round(swap_p50, 3),
        "swap_ms_p95": round(percentile(swap_ms, 0.95), 3),
        "delta_read_ms_p50": round(statistics.median(read_ms), 3),
        "rollback_ms_p50": round(statistics.median(rollback_ms), 3),
        "reload_ms_p50": round(reload_p50, 1),
        "speedup": round(reload_p50 / swap_p50, 1),
        "rollback_restores_base_bit_for_bit": base_again,
    }


class _OneUpdateLedger:
    """Stands in for the ledger in `bench swap`: its one new event applies update 1, whose delta
    is checked against its SHA-256 when read, as a replica does."""

    def __init__(self, sha256: str):
        self.sha256 = sha256

    def events_after(self, version: int) -> list:
        return [SimpleNamespace(version=version + 1, update_id=1, action="apply")]

    def delta_hashes(self, update_ids) -> dict[int, str]:
        return {1: self.sha256}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server at {url} was not ready in {timeout:.0f} s")


def bench_service(quick: bool = False) -> dict:
    """Learn-to-answerable latency of a real embedded server on the default model."""
    prepare(ServiceSettings())  # once, before timing anything
    n_facts = 3 if quick else 10
    facts = make_facts(n_facts, seed=SERVICE_FACT_SEED)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The server's log (each update's time by phase) outlives the run's data.
    log_path = ServiceSettings().data_dir.parent / "bench" / "service" / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir, open(log_path, "wb") as log:
        env = os.environ | {"SPARSE_MEMORY_DATA_DIR": data_dir}
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", data_dir]
        tqdm.write(f"server log: {log_path}")
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, server)
            return _learn_and_ask(url, facts)
        finally:
            server.terminate()
            server.wait(timeout=60)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def _learn_and_ask(url: str, facts) -> dict:
    client = httpx.Client(base_url=url, timeout=300)
    to_served, to_answerable, rows = [], [], []
    for fact in tqdm(facts, desc="learn", unit="fact"):
        # What a user would post: a few sentences and the questions they expect to be asked.
        document = {
            "text": " ".join(statements(fact)[:3]),
            "qa": [{"question": q, "answer": a} for q, a in training_questions(fact)],
        }
        question = eval_questions(fact)[0]  # a phrasing that was never trained on
        started = time.perf_counter()
        update_id = client.post("/learn", json={"documents": [document]}).json()["update_id"]
        while (update := client.get(f"/updates/{update_id}").json())["status"] in PENDING:
            time.sleep(0.1)
        if update["status"] == "applied":
            while served_version(client) < update["model_version"]:
                time.sleep(0.05)
        served = time.perf_counter() - started
        body = {"messages": [{"role": "user", "content": question}], "max_new_tokens": 24}
        answer = client.post("/generate", json=body).json()["text"]
        answered = time.perf_counter() - started
        contains = answer_scores(answer, (fact.answer,), question)["contains"] == 1.0
        to_served.append(served)
        if contains:
            to_answerable.append(answered)
        rows.append(
            {
                "answer": fact.answer,
                "said": answer,
                "status": update["status"],
                "steps": update["steps"],
                "seconds": round(answered, 1),
                # where the time went: waiting for the worker, then learning (steps and probes)
                "queued_s": _seconds_between(update["created_at"], update["started_at"]),
                "learning_s": _seconds_between(update["started_at"], update["applied_at"]),
            }
        )
        tqdm.write(
            f"{fact.answer!r}: {update['status']} in {served:.1f} s (queued {rows[-1]['queued_s']} s, learning "
            f"{rows[-1]['learning_s']} s, {update['steps']} steps); asked {question!r} -> {answer!r}"
        )
    return {
        "facts": len(facts),
        "answerable": len(to_answerable),
        "learn_to_answerable_p50_s": round(statistics.median(to_answerable), 1) if to_answerable else None,
        "learn_to_answerable_p95_s": round(percentile(to_answerable, 0.95), 1) if to_answerable else None,
        "learn_to_served_p50_s": round(statistics.median(to_served), 1),
        "learn_to_served_p95_s": round(percentile(to_served, 0.95), 1),
        "per_fact": rows,
    }
