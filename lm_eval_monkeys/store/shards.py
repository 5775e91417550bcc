"""Sharded runs: a run's problems split into N shards, generated anywhere, merged into one store.

Shard ``i/N`` holds the problems whose dataset index is i mod N (round robin, so every
shard gets a similar mix of short and long problems). Doc ids stay the dataset's own, so
shards never collide and their merge equals the unsharded run's store. Each shard's store
records its shard and how many samples each problem asked for; ``merge`` checks that all N
shards are there, complete, of one configuration, and that any problem held twice (a shard
run twice) holds the same samples, then copies them into one store. Merging is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.core import STORE_FILE, SampleStore
from lm_eval_monkeys.store.run_records import TaskRecord, changed_keys

# Tables that merging copies, with the columns that must agree between copies.
_COMPARED = {
    "docs": (("task", "doc_id"), ("doc", "prompt_hash", "gen_kwargs")),
    "samples": (
        ("task", "doc_id", "sample_idx"),
        ("completion", "prompt_tokens", "completion_tokens"),
    ),
}


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the problems whose dataset index is index mod count."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, doc_id: int) -> bool:
        return doc_id % self.count == self.index


WHOLE = Shard(0, 1)


def parse_shard(value: object) -> Shard | None:
    """``"i/N"`` (0 <= i < N) as a Shard; None or "" for an unsharded run."""
    if value is None or value == "":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not match or not int(match[1]) < int(match[2]):
        raise MonkeysError(
            f"--shard must be i/N with 0 <= i < N, got {value!r}; "
            "e.g. --shard 0/4 on one machine, --shard 1/4 on the next"
        )
    return Shard(int(match[1]), int(match[2]))


def bind_shard(run_dir: Path, shard: Shard | None) -> None:
    """Record a run directory's shard before it generates; refuse to mix shards in one."""
    if shard is None and not (run_dir / STORE_FILE).exists():
        return
    store = SampleStore(run_dir)
    try:
        bind_stored_shard(store, str(shard) if shard else None)
    finally:
        store.close()


@dataclass(frozen=True)
class ShardRun:
    """What merging needs to know of one shard's store."""

    path: Path
    shard: Shard
    config: dict[str, Any]
    doc_ids: dict[str, list[int]]
    requested: dict[str, set[int]]
    records: dict[str, TaskRecord]

    def __str__(self) -> str:
        return f"shard {self.shard} ({self.path})"


@dataclass(frozen=True)
class Merged:
    shards: int
    tasks: int
    problems: int
    samples: int


def merge_shards(shard_dirs: Sequence[Path], output: Path) -> Merged:
    """Merge shard stores into ``output`` after checking they form one complete run."""
    paths = list(dict.fromkeys(Path(d).resolve() for d in shard_dirs))  # a dir given twice
    if not paths:
        raise MonkeysError("merge needs the shard directories, e.g. merge runs/s0 runs/s1 ...")
    if output.resolve() in paths:
        raise MonkeysError(f"--output {output} is one of the shards; merge into a new directory")
    runs = [_read_shard(path) for path in paths]
    _check_one_run(runs)
    with SampleStore(output) as out:
        stored = out.config()
        if stored_shard(out) is not None or (stored is not None and stored != runs[0].config):
            raise MonkeysError(f"{output} holds another run; merge into a new --output directory")
        for run in runs:
            if differing := differences(out, run.path):
                raise MonkeysError(
                    f"{output} already holds different samples than {run} "
                    f"({'; '.join(differing)}); merge into a new --output directory"
                )
        out.bind_config(runs[0].config)
        for record in runs[0].records.values():
            out.records.bind(record)
        for run in runs:
            absorb(out, run.path)
        doc_ids = registered_docs(out)
        samples = out.database.read("SELECT COUNT(*) FROM samples")[0][0]
    return Merged(
        shards=runs[0].shard.count,
        tasks=len(doc_ids),
        problems=sum(len(ids) for ids in doc_ids.values()),
        samples=samples,
    )


def _read_shard(path: Path) -> ShardRun:
    with SampleStore(path, writer=False) as store:
        config = store.config()
        shard = parse_shard(stored_shard(store)) or WHOLE
        if config is None:
            raise MonkeysError(
                f"shard {shard} ({path}) holds no samples (it stopped before generating); "
                "rerun its command, then merge again"
            )
        missing, first = incomplete(store)
        if missing:
            detail = ", ".join(
                f"{task} doc {doc_id}: {held} of {wanted or '?'}"
                for task, doc_id, held, wanted in first
            )
            raise MonkeysError(
                f"shard {shard} ({path}) is incomplete: {missing} problems hold fewer samples "
                f"than requested ({detail}); rerun its command to finish it, then merge again"
            )
        run = ShardRun(
            path, shard, config, registered_docs(store), requested(store), store.records.all()
        )
    for task, ids in run.doc_ids.items():
        stray = next((i for i in ids if not shard.holds(i)), None)
        if stray is not None:
            raise MonkeysError(
                f"{run} holds {task} doc {stray}, which belongs to shard "
                f"{stray % shard.count}/{shard.count}; was it run with another --shard?"
            )
    return run


def _check_one_run(runs: list[ShardRun]) -> None:
    """Same configuration, same N, every shard present, same tasks and k, no conflicts."""
    first = runs[0]
    for run in runs[1:]:
        if changed := changed_keys(first.config, run.config):
            raise MonkeysError(
                f"{run} and {first} come from different runs (changed: {', '.join(changed)}); "
                "merge shards of one configuration"
            )
    counts = sorted({run.shard.count for run in runs})
    if len(counts) > 1:
        listed = ", ".join(f"{run.shard} ({run.path})" for run in runs)
        raise MonkeysError(f"the shards split the run differently ({listed}); use one N")
    count = counts[0]
    present = {run.shard.index for run in runs}
    missing = [f"{i}/{count}" for i in range(count) if i not in present]
    if missing:
        listed = ", ".join(f"{run.shard} ({run.path})" for run in runs)
        raise MonkeysError(
            f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {count} "
            f"(given: {listed}); run the same command with --shard {missing[0]} "
            "and pass its directory too"
        )
    for run in runs[1:]:
        for task in set(run.records) & set(first.records):
            if changed := run.records[task].differences(first.records[task]):
                raise MonkeysError(
                    f"{run} and {first} ran {task} with another {', '.join(changed)}; "
                    "merge shards of one run (same checker, prompt and metrics)"
                )
        if set(run.doc_ids) != set(first.doc_ids):
            raise MonkeysError(
                f"{run} holds tasks {', '.join(sorted(run.doc_ids))} but {first} holds "
                f"{', '.join(sorted(first.doc_ids))}; run every shard with the same --tasks"
            )
    for task in first.doc_ids:
        asked = [(run, run.requested.get(task, set())) for run in runs]
        if len(set().union(*(k for _, k in asked))) > 1:
            listed = ", ".join(f"{'/'.join(map(str, sorted(k)))} in {run}" for run, k in asked)
            raise MonkeysError(
                f"the shards drew different numbers of samples per {task} problem ({listed}); "
                "rerun the smaller ones with the larger --repeats, then merge again"
            )
    for i, run in enumerate(runs):
        for other in runs[i + 1 :]:
            if other.shard != run.shard:
                continue
            with SampleStore(run.path, writer=False) as store:
                differing = differences(store, other.path)
            if differing:
                raise MonkeysError(
                    f"{run} and {other} overlap with different samples "
                    f"({'; '.join(differing)}); keep one of them"
                )


def differences(store: SampleStore, other: Path, limit: int = 3) -> list[str]:
    """Rows that ``other``'s store holds under the same key as ``store`` with other content."""
    found: list[str] = []
    with store.database.attached(Path(other) / STORE_FILE):
        for table, (keys, values) in _COMPARED.items():
            differs = " OR ".join(f"m.{v} IS NOT o.{v}" for v in values)
            rows = store.database.read(
                f"SELECT {', '.join('m.' + k for k in keys)} FROM other.{table} o "
                f"JOIN main.{table} m USING ({', '.join(keys)}) WHERE {differs} LIMIT ?",
                (limit - len(found),),
            )
            found += [f"{table} " + " ".join(map(str, row)) for row in rows]
            if len(found) >= limit:
                break
    return found


def absorb(store: SampleStore, other: Path) -> None:
    """Copy ``other``'s docs, samples, requested counts, verdicts and rewards into ``store``
    in one transaction; rows already held are kept (callers check ``differences`` first)."""
    with store.database.attached(Path(other) / STORE_FILE):
        db = store.database.connection

        def copy() -> None:
            for table in ("docs", "samples", "rewards", "verdicts"):
                db.execute(f"INSERT OR IGNORE INTO main.{table} SELECT * FROM other.{table}")
            db.execute(
                "INSERT INTO main.requested SELECT * FROM other.requested WHERE true "
                "ON CONFLICT (task, doc_id) DO UPDATE "
                "SET repeats = MAX(repeats, excluded.repeats)"
            )

        store.database.write(copy)


def stored_shard(store: SampleStore) -> str | None:
    """The ``i/N`` shard this run generates, None for a whole run."""
    return store.meta("shard")


def bind_stored_shard(store: SampleStore, shard: str | None) -> None:
    """Record the run's shard, or refuse a rerun with another one (or with none)."""
    stored = stored_shard(store)
    has_samples = bool(store.database.read("SELECT 1 FROM docs LIMIT 1"))
    if stored == shard or (stored is None and not has_samples):
        if shard is not None and stored is None:
            store.database.write(lambda: store.set_meta("shard", shard))
        return
    held = f"shard {stored}" if stored else "a whole (unsharded) run"
    wanted = f"--shard {shard}" if shard else "a run without --shard"
    raise MonkeysError(f"{store.run_dir} holds {held}; use a new --output_path for {wanted}")


def incomplete(store: SampleStore, limit: int = 3) -> tuple[int, list[tuple[str, int, int, int]]]:
    """Problems holding fewer samples than requested: their count and the first few
    as (task, doc_id, held, requested); requested is 0 where it was never recorded
    (a run stopped between registering its problems and recording their counts)."""
    query = (
        "SELECT d.task, d.doc_id, COUNT(s.sample_idx), COALESCE(r.repeats, 0) FROM docs d "
        "LEFT JOIN requested r ON r.task = d.task AND r.doc_id = d.doc_id "
        "LEFT JOIN samples s ON s.task = d.task AND s.doc_id = d.doc_id "
        "AND s.sample_idx < r.repeats GROUP BY d.task, d.doc_id "
        "HAVING r.repeats IS NULL OR COUNT(s.sample_idx) < r.repeats "
        "ORDER BY d.task, d.doc_id"
    )
    rows = store.database.read(query)
    return len(rows), rows[:limit]


def registered_docs(store: SampleStore) -> dict[str, list[int]]:
    """Every task's registered doc ids."""
    found: dict[str, list[int]] = {}
    for task, doc_id in store.database.read("SELECT task, doc_id FROM docs ORDER BY task, doc_id"):
        found.setdefault(task, []).append(doc_id)
    return found


def requested(store: SampleStore) -> dict[str, set[int]]:
    """The distinct requested sample counts of each task."""
    found: dict[str, set[int]] = {}
    for task, repeats in store.database.read("SELECT DISTINCT task, repeats FROM requested"):
        found.setdefault(task, set()).add(repeats)
    return found
