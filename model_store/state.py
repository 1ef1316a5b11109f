"""The serving model as a pure function of (base checkpoint, ordered model events).

Value rows = base rows + the deltas of the active updates, added in update-id order. Every
process (API replica or worker) holds a ``ModelState`` and moves it forward by replaying the
ledger's events: an apply adds the update's delta to its rows in place; a rollback recomputes
the rows that update touched from the base and the updates still active. Updates are applied
in id order, so adding deltas as events arrive sums them in id order too: a replayed model is
bit-identical to one that followed the events live, and rolling everything back gives the base.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

Rows = dict[int, tuple[torch.Tensor, torch.Tensor]]  # memory layer -> (slots, delta rows)


class DeltaMismatch(RuntimeError):
    """A delta file is missing, or is not the one its update was learned with."""


class DeltaStore:
    """Per-update deltas as safetensors files (fp32), written atomically. A file whose SHA-256 is
    known (``expect``, from the ledger) is read only if it still has it."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.expected: dict[int, str] = {}  # update id -> SHA-256 of its file

    def expect(self, hashes: dict[int, str]) -> None:
        self.expected.update(hashes)

    def path(self, update_id: int) -> Path:
        return self.directory / f"update-{update_id:08d}.safetensors"

    def save(self, update_id: int, rows: Rows, reserved: dict[int, torch.Tensor] | None = None) -> str:
        """``reserved``: per layer, slots the update left as they are but later updates spare.
        Returns the file's SHA-256."""
        tensors = {}
        for layer, (slots, delta) in rows.items():
            tensors[f"layer{layer}.slots"] = slots.detach().to("cpu", torch.long).contiguous()
            tensors[f"layer{layer}.delta"] = delta.detach().to("cpu", torch.float32).contiguous()
        for layer, slots in (reserved or {}).items():
            if len(slots):
                tensors[f"layer{layer}.reserved"] = slots.detach().to("cpu", torch.long).contiguous()
        data = safetensors_save(tensors)  # serialised once: hashed and written from the same bytes
        sha256 = hashlib.sha256(data).hexdigest()
        partial = self.path(update_id).with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, self.path(update_id))  # readers never see half a file
        self.expected[update_id] = sha256
        return sha256

    def load(self, update_id: int) -> Rows:
        return self.load_with_reserved(update_id)[0]

    def load_with_reserved(self, update_id: int) -> tuple[Rows, dict[int, torch.Tensor]]:
        """The update's rows, and per layer the slots it reserved (none unless it was learned with
        reserve > 1), from one read of its file."""
        path = self.path(update_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise DeltaMismatch(
                f"the delta of update {update_id} is missing ({path}): this replica cannot build the model the "
                "ledger describes; restore the file into the shared data directory"
            ) from error
        expected = self.expected.get(update_id)
        if expected is not None and (found := hashlib.sha256(data).hexdigest()) != expected:
            raise DeltaMismatch(
                f"the delta of update {update_id} ({path}) has SHA-256 {found}, the ledger recorded {expected}: "
                "it was altered or replaced; restore the file learned with the update"
            )
        tensors = safetensors_load(data)
        layers = sorted({int(name.split(".")[0].removeprefix("layer")) for name in tensors if name.endswith(".slots")})
        rows = {layer: (tensors[f"layer{layer}.slots"], tensors[f"layer{layer}.delta"]) for layer in layers}
        reserved = {layer: tensors[f"layer{layer}.reserved"] for layer in layers if f"layer{layer}.reserved" in tensors}
        return rows, reserved


class ModelState:
    """A memory model kept equal to base + active deltas, at a known ledger version."""

    def __init__(self, model, store: DeltaStore, base: dict[int, torch.Tensor] | None = None):
        """``base``: the base rows of another state of the same checkpoint in this process, to
        share (they are never written; a large memory's table is gigabytes)."""
        self.model = model
        self.store = store
        self.memories = model.memory_layers()
        # The base rows, for rollbacks; only the value tables ever change.
        if base is None:
            base = {layer: memory.values.detach().clone() for layer, memory in self.memories.items()}
        self.base = base
        self.active: list[int] = []  # applied update ids, ascending
        # How many active updates wrote or reserved each slot: new updates spare them (SparseConfig).
        self.write_counts = {layer: torch.zeros(len(base), dtype=torch.int32) for layer, base in self.base.items()}
        self.version = 0
        self._prefetched: dict[int, tuple[Rows, dict[int, torch.Tensor]]] = {}  # read ahead of their swap

    def prefetch(self, ledger) -> None:
        """Read the deltas of new apply events now (any thread), so that the swap itself, on the
        thread that serves, is only the in-place write of the rows."""
        for event in self._new_events(ledger):
            if event.action == "apply" and event.update_id not in self._prefetched:
                self._prefetched[event.update_id] = self.store.load_with_reserved(event.update_id)

    @torch.no_grad()
    def apply(self, update_id: int) -> int:
        """Add an update's delta to the live rows in place; returns how many rows changed."""
        changed = 0
        prefetched = self._prefetched.pop(update_id, None)
        rows, reserved = prefetched or self.store.load_with_reserved(update_id)
        # An update applied again after a later one (the rollback of the correction that
        # superseded it) is summed in id order like the rest: its rows are recomputed.
        in_order = not self.active or update_id > self.active[-1]
        self.active = sorted([*self.active, update_id])
        for layer, (slots, delta) in rows.items():
            values = self.memories[layer].values
            if in_order:
                values.index_add_(0, slots.to(values.device), delta.to(values.device))  # one pass; slots never repeat
            self.write_counts[layer][slots] += 1
            changed += len(slots)
        if not in_order:
            self._recompute(rows)
        for layer, slots in reserved.items():
            self.write_counts[layer][slots] += 1
        return changed

    @contextlib.contextmanager
    def without(self, update_ids: Iterable[int]) -> Iterator[None]:
        """The rows (and the slots new updates spare) as if ``update_ids`` were rolled back, for the
        duration of the block; then as they were, bit for bit, whatever the block wrote to them."""
        update_ids = list(update_ids)
        saved_active, saved_counts = list(self.active), {layer: c.clone() for layer, c in self.write_counts.items()}
        saved_rows = {}
        with torch.no_grad():
            for update_id in update_ids:
                for layer, (slots, _) in self.store.load(update_id).items():
                    values = self.memories[layer].values
                    saved_rows.setdefault(layer, []).append((slots, values[slots.to(values.device)].clone()))
        try:
            for update_id in update_ids:
                self.roll_back(update_id)
            yield
        finally:
            with torch.no_grad():
                for layer, saved in saved_rows.items():
                    values = self.memories[layer].values
                    for slots, rows in saved:
                        values[slots.to(values.device)] = rows
            self.active, self.write_counts = saved_active, saved_counts

    @torch.no_grad()
    def roll_back(self, update_id: int) -> int:
        """Recompute the rows an update touched from the base and the updates still active."""
        self.active = [active for active in self.active if active != update_id]
        touched, reserved = self.store.load_with_reserved(update_id)
        self._recompute(touched)
        for layer, (slots, _) in touched.items():
            self.write_counts[layer][slots] -= 1
        for layer, slots in reserved.items():
            self.write_counts[layer][slots] -= 1
        return sum(len(slots) for slots, _ in touched.values())

    @torch.no_grad()
    def _recompute(self, touched: Rows) -> None:
        """Set the rows at the slots of ``touched`` to the base plus the active deltas, added in id order."""
        rows, position = {}, {}
        for layer, (slots, _) in touched.items():
            base = self.base[layer]
            rows[layer] = base[slots.to(base.device)].clone()
            position[layer] = torch.full((len(base),), -1, dtype=torch.long)
            position[layer][slots] = torch.arange(len(slots))
        for active in self.active:  # ascending id: the same order in which they were added
            for layer, (slots, delta) in self.store.load(active).items():
                if layer not in touched:
                    continue
                where = position[layer][slots]
                hit = where >= 0  # an update never lists a slot twice, so no two adds collide
                rows[layer][where[hit].to(rows[layer].device)] += delta[hit].to(rows[layer].device)
        for layer, (slots, _) in touched.items():
            values = self.memories[layer].values
            values[slots.to(values.device)] = rows[layer].to(values.device)

    def written(self) -> dict[int, torch.Tensor]:
        """Per memory layer, the slots that active updates wrote or reserved (bool, one per slot)."""
        return {layer: counts > 0 for layer, counts in self.write_counts.items()}

    def replay(self, events) -> list[int]:
        """Apply ledger events in version order; returns the versions applied."""
        applied = []
        for event in events:
            if event.version <= self.version:
                continue
            if event.action == "apply":
                self.apply(event.update_id)
            elif event.action == "rollback":
                self.roll_back(event.update_id)
            else:
                raise ValueError(f"unknown model event {event.action!r} at version {event.version}")
            self.version = event.version
            applied.append(event.version)
        return applied

    def catch_up(self, ledger) -> list[int]:
        return self.replay(self._new_events(ledger))

    def _new_events(self, ledger) -> list:
        """The ledger's events after this state's version; their deltas' recorded SHA-256 is
        expected of the files from now on."""
        events = ledger.events_after(self.version)
        self.store.expect(ledger.delta_hashes(event.update_id for event in events))
        return events

    def state_hash(self) -> str:
        """SHA-256 of every memory value table: equal hashes, bit-identical models."""
        digest = hashlib.sha256()
        for layer in sorted(self.memories):
            digest.update(self.memories[layer].values.detach().cpu().contiguous().numpy())  # no copy of the table
        return digest.hexdigest()


def rows_equal_base(state: ModelState) -> bool:
    return all(torch.equal(state.memories[layer].values, base) for layer, base in state.base.items())
