"""Telling serving processes that the model moved: Redis pub/sub when Redis is configured.

An event only says "version n exists"; what changed is read from the ledger, so a process
that missed a message loses nothing: it catches up on the next message or poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def channel(queue_name: str) -> str:
    return f"{queue_name}:model-events"


class RedisEvents:
    def __init__(self, url: str, queue_name: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.channel = channel(queue_name)

    def publish(self, version: int) -> None:
        """Announce ``version``. Where Redis cannot be reached the ledger still has it, and the
        other processes catch up on their next poll of it: a warning, not an error."""
        try:
            self.client.publish(self.channel, str(version))
        except Exception:
            log.warning("announcing model version %s failed; replicas catch up by polling", version, exc_info=True)

    def listen(self, on_version: Callable[[int], None], stop: threading.Event) -> threading.Thread:
        """Call ``on_version`` for each published version, on a daemon thread, until ``stop``."""

        def run() -> None:
            while not stop.is_set():
                try:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                    while not stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message is not None:
                            on_version(int(message["data"]))
                except Exception:  # Redis restarted or unreachable: retry; the poll covers the gap
                    log.warning("model event subscription lost; retrying", exc_info=True)
                    stop.wait(1.0)

        thread = threading.Thread(target=run, name="model-events", daemon=True)
        thread.start()
        return thread
