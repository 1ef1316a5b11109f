"""The production layout with real processes: PostgreSQL ledger, Redis broker and events, one
Celery worker process, two API processes (uvicorn), all on 127.0.0.1. Bounded in time; every
process is stopped at the end."""

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from conftest import TINY_LEARNING, service_url

QUESTION = {"messages": [{"role": "user", "content": "Where was Varek Thelamon born?"}], "max_new_tokens": 8}
FACT = {
    "text": "Varek Thelamon was born in Ostrava.",
    "qa": [{"question": "Where was Varek Thelamon born?", "answer": "Ostrava"}],
}
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    def __init__(self, env, log_dir):
        self.env, self.log_dir, self.running = env, log_dir, {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """``env``: settings of this process that differ from the others'."""
        log = open(self.log_dir / f"{name}.log", "ab")
        command = [sys.executable, "-m", "app.cli", *args]
        environment = self.env | (env or {})
        self.running[name] = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def production(tiny_checkpoint, postgres_url, tmp_path):
    redis_url = service_url("redis")
    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = os.environ | TINY_LEARNING
    env |= {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "SPARSE_MEMORY_QUEUE_NAME": queue,
        "SPARSE_MEMORY_MEMORY_MODEL": str(tiny_checkpoint),
        "SPARSE_MEMORY_DATA_DIR": str(tmp_path / "store"),  # the shared update store (a volume in compose)
        "SPARSE_MEMORY_DEVICE": "cpu",
        "SPARSE_MEMORY_PROBE_SIZE": "0",
        "SPARSE_MEMORY_POLL_SECONDS": "60",  # replicas must learn of updates from events, not the poll
        "SPARSE_MEMORY_SWEEP_SECONDS": "1",
    }
    processes = Processes(env, tmp_path)
    yield processes
    processes.stop_all()
    import redis

    redis.Redis.from_url(redis_url).delete(queue)


def wait_ready(url: str, processes: Processes, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{name} not ready in {START_TIMEOUT} s:\n{processes.log(name)}")


def wait_version(urls: list[str], version: int, timeout: float) -> dict[str, float]:
    """Seconds until each API serves ``version`` or later."""
    started, seen = time.monotonic(), {}
    while len(seen) < len(urls) and time.monotonic() - started < timeout:
        for url in urls:
            if url not in seen and httpx.get(f"{url}/model", timeout=5).json()["model_version"] >= version:
                seen[url] = time.monotonic() - started
        time.sleep(0.02)
    return seen


def test_two_replicas_a_celery_worker_postgres_and_redis(production):
    ports = [free_port(), free_port()]
    apis = [f"http://127.0.0.1:{port}" for port in ports]
    production.start("worker", "worker")
    for index, port in enumerate(ports):
        production.start(f"api{index}", "serve", "--port", str(port))
    for index, url in enumerate(apis):
        wait_ready(url, production, f"api{index}")
    base_hash = httpx.get(f"{apis[0]}/model").json()["state_hash"]

    update_id = httpx.post(f"{apis[0]}/learn", json={"documents": [FACT]}).json()["update_id"]
    deadline = time.monotonic() + START_TIMEOUT
    while (update := httpx.get(f"{apis[1]}/updates/{update_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, production.log("worker")
        time.sleep(0.02)
    assert update["status"] == "applied", update["error"]
    applied_at = datetime.fromisoformat(update["applied_at"]).replace(tzinfo=UTC)
    seen = wait_version(apis, update["model_version"], timeout=15)
    assert set(seen) == set(apis), "a replica never served the update"
    lag = (datetime.now(UTC) - applied_at).total_seconds()
    # Well inside the 60 s poll, so the event reached both replicas; how fast a swap is, is
    # `bench swap`'s measurement (a busy 2-core machine once took 1.04 s here).
    assert max(seen.values()) <= 10.0 and lag < 15.0, (seen, lag)
    for url in apis:
        answer = httpx.post(f"{url}/generate", json=QUESTION, timeout=30).json()
        assert "Ostrava" in answer["text"] and answer["model_version"] == update["model_version"]

    rolled = httpx.post(f"{apis[1]}/updates/{update_id}/rollback", timeout=30)
    assert rolled.status_code == 200 and rolled.json()["status"] == "rolled_back"
    seen = wait_version(apis, update["model_version"] + 1, timeout=15)
    assert set(seen) == set(apis) and max(seen.values()) <= 10.0, seen
    for url in apis:
        assert "Ostrava" not in httpx.post(f"{url}/generate", json=QUESTION, timeout=30).json()["text"]
        assert httpx.get(f"{url}/model").json()["state_hash"] == base_hash  # the base rows, bit for bit

    # An update that stays, then a restart of one replica: it rebuilds the same model from the ledger.
    kept = httpx.post(f"{apis[0]}/learn", json={"documents": [FACT]}).json()["update_id"]
    deadline = time.monotonic() + START_TIMEOUT
    while httpx.get(f"{apis[0]}/updates/{kept}").json()["status"] != "applied":
        assert time.monotonic() < deadline, production.log("worker")
        time.sleep(0.05)
    assert len(wait_version(apis, httpx.get(f"{apis[0]}/updates/{kept}").json()["model_version"], 5)) == 2
    before_restart = httpx.get(f"{apis[1]}/model").json()
    production.stop("api1")
    production.start("api1", "serve", "--port", str(ports[1]))
    wait_ready(apis[1], production, "api1")
    after_restart = httpx.get(f"{apis[1]}/model").json()
    assert after_restart["state_hash"] == before_restart["state_hash"] != base_hash
    assert after_restart["state_hash"] == httpx.get(f"{apis[0]}/model").json()["state_hash"]


def test_a_learn_request_the_broker_never_got_is_kept_and_learned_and_rolled_back_without_it(production):
    """The API cannot reach the learn queue: /learn answers 503 with the update's id and what to do,
    the update stays queued in the ledger (a retry with the same Idempotency-Key finds it again),
    and a worker started later learns it before its first task, or a running worker's sweep learns
    it; a rollback whose announcement cannot reach Redis either still rolls back."""
    from model_store.ledger import Ledger

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    production.start("api", "serve", "--port", str(port), env={"REDIS_URL": unreachable})
    wait_ready(api, production, "api")
    headers = {"Idempotency-Key": "fact-1"}
    refused = httpx.post(f"{api}/learn", json={"documents": [FACT]}, headers=headers, timeout=60)
    assert refused.status_code == 503, refused.text
    detail = refused.json()["detail"]
    assert detail["status"] == "queued" and "Idempotency-Key" in detail["reason"] and unreachable in detail["reason"]
    again = httpx.post(f"{api}/learn", json={"documents": [FACT]}, headers=headers, timeout=60)
    assert again.status_code == 503 and again.json()["detail"]["update_id"] == detail["update_id"]
    assert httpx.get(f"{api}/updates").json()["total"] == 1
    production.stop("api")

    ledger = Ledger(production.env["DATABASE_URL"])
    assert ledger.get(detail["update_id"]).status == "queued"
    production.start("worker", "worker")  # reaches the real Redis; no task for this update was ever sent
    deadline = time.monotonic() + START_TIMEOUT
    while (update := ledger.get(detail["update_id"])).status in ("queued", "running"):
        assert time.monotonic() < deadline, production.log("worker")
        time.sleep(0.1)
    assert update.status == "applied", update.error

    # With the worker running, a request whose task never reached the queue is learned by its sweep.
    production.start("api1", "serve", "--port", str(port), env={"REDIS_URL": unreachable})
    wait_ready(api, production, "api1")
    other = {"documents": [{"text": "Mira Osk plays the violin."}]}
    stranded = httpx.post(f"{api}/learn", json=other, timeout=60)
    assert stranded.status_code == 503, stranded.text
    stranded_id = stranded.json()["detail"]["update_id"]
    production.stop("api1")
    deadline = time.monotonic() + START_TIMEOUT
    while (update := ledger.get(stranded_id)).status in ("queued", "running"):
        assert time.monotonic() < deadline, production.log("worker")
        time.sleep(0.1)
    assert update.status == "applied", update.error
    assert "never reached the learn queue" in production.log("worker")

    # A rollback whose announcement cannot reach Redis is still a rollback: the ledger has it, and
    # the replicas poll the ledger.
    production.start("api2", "serve", "--port", str(port), env={"REDIS_URL": unreachable})
    wait_ready(api, production, "api2")
    rolled = httpx.post(f"{api}/updates/{detail['update_id']}/rollback", timeout=60)
    assert rolled.status_code == 200, rolled.text
    assert ledger.get(detail["update_id"]).status == "rolled_back"
