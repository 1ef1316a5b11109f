"""The ``sparse-memory`` command: the core library's commands, the service (``serve``,
``worker``) and a client for a running server (``learn``, ``ask``, ``updates``, ``rollback``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from sparse_memory import cli as core_cli
from sparse_memory.bench import BENCHMARKS

# The service's own benchmarks join the core library's under `sparse-memory bench`.
BENCHMARKS.update(
    {
        "swap": ("app.bench", "bench_swap"),
        "service": ("app.bench", "bench_service"),
        "documents": ("app.bench_documents", "bench_documents"),
    }
)

DEFAULT_URL = os.environ.get("SPARSE_MEMORY_URL", "http://127.0.0.1:8000")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.data_dir is not None:
        os.environ["SPARSE_MEMORY_DATA_DIR"] = str(args.data_dir)
    from app.main import create_app
    from model_store.checkpoint import checkpoint_dir
    from model_store.settings import ServiceSettings

    settings = ServiceSettings()
    checkpoint_dir(settings, log=lambda line: print(line, file=sys.stderr, flush=True))  # first start: prepare
    # The service's own lines (each update's outcome and where its time went) beside uvicorn's.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker.celery_app import run_worker

    run_worker()
    return 0


def _client(args: argparse.Namespace):
    import httpx

    return httpx.Client(base_url=args.url, timeout=120)


def _show(response) -> dict:
    if response.status_code >= 400:
        raise SystemExit(f"error {response.status_code}: {response.text}")
    return response.json()


def _learn(args: argparse.Namespace) -> int:
    with _client(args) as client:
        document = {"text": args.text}
        if args.qa:
            document["qa"] = [{"question": q, "answer": a} for q, a in (pair.split("=", 1) for pair in args.qa)]
        accepted = _show(client.post("/learn", json={"documents": [document]}))
        if not args.wait:
            print(json.dumps(accepted))
            return 0
        update = wait_until_served(client, accepted["update_id"], args.timeout)
        print(json.dumps(update))
        return 0 if update["status"] == "applied" else 1


def served_version(client) -> int:
    """The model version the server answers with: from /readyz, which is cheap (/model also
    hashes the model's tables), and says it even while the server catches up (503)."""
    return client.get("/readyz").json().get("model_version", -1)


def wait_until_served(client, update_id: int, timeout: float) -> dict:
    """Poll until the update is finished and, if applied, this server answers with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = _show(client.get(f"/updates/{update_id}"))
        if update["status"] in ("failed", "rejected", "rolled_back"):
            return update
        if update["status"] == "applied":
            if served_version(client) >= update["model_version"]:
                return update
        time.sleep(0.2)
    raise SystemExit(f"update {update_id} was not served within {timeout:.0f} s")


def _ask(args: argparse.Namespace) -> int:
    with _client(args) as client:
        body = {"messages": [{"role": "user", "content": args.question}], "max_new_tokens": args.max_new_tokens}
        answer = _show(client.post("/generate", json=body))
        print(answer["text"])
        print(f"(model version {answer['model_version']})", file=sys.stderr)
    return 0


def _updates(args: argparse.Namespace) -> int:
    with _client(args) as client:
        listing = _show(client.get("/updates", params={"limit": args.limit}))
        for update in listing["items"]:
            text = update["documents"][0]["text"] if update["documents"] else ""
            print(f"{update['id']:>5}  {update['status']:<11}  {len(update['slots']):>4} slots  {text[:60]!r}")
        print(f"{listing['total']} updates", file=sys.stderr)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(_show(client.post(f"/updates/{args.update_id}/rollback"))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse-memory", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    core_cli.add_commands(commands)

    serve = commands.add_parser("serve", help="run the API with the embedded default (or the production layout)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path, default=None, help="this instance's ledger and update store")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run a Celery learn worker (needs REDIS_URL)")
    worker.set_defaults(run=_worker)

    def client_command(name: str, help: str, run) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help)
        command.add_argument(
            "--url", default=DEFAULT_URL, help="the server (default $SPARSE_MEMORY_URL or %(default)s)"
        )
        command.set_defaults(run=run)
        return command

    learn = client_command("learn", "post a text to learn", _learn)
    learn.add_argument("text")
    learn.add_argument("--qa", action="append", metavar="QUESTION=ANSWER", help="a question about the text")
    learn.add_argument("--wait", action="store_true", help="return once the server answers with the update")
    learn.add_argument("--timeout", type=float, default=600)
    ask = client_command("ask", "ask the server a question (chat template)", _ask)
    ask.add_argument("question")
    ask.add_argument("--max-new-tokens", type=int, default=64)
    updates = client_command("updates", "list the updates, newest first", _updates)
    updates.add_argument("--limit", type=int, default=20)
    rollback = client_command("rollback", "roll an applied update back", _rollback)
    rollback.add_argument("update_id", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
