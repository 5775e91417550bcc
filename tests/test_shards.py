"""Sharded runs: shards generated separately and merged equal the unsharded run.

Every run is the real ``lm-eval-monkeys`` command (in this process) on ``monkeys-synthetic``
writing real SQLite stores; faults are real stores with a shard missing, a sample changed,
samples deleted, or another configuration.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from lm_eval_monkeys.cli import main
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.export import sample_records
from lm_eval_monkeys.scoring.rescore import rescore_run
from lm_eval_monkeys.store import SampleStore
from lm_eval_monkeys.store.shards import merge_shards

RUN = ["--model", "monkeys-synthetic", "--tasks", "monkeys_gsm8k", "--limit", "14"]
TABLES = {
    "docs": "task, doc_id",
    "samples": "task, doc_id, sample_idx",
    "requested": "task, doc_id",
}


def run(run_dir: Path, *extra: str) -> None:
    main(
        [
            *RUN,
            "--model_args",
            "seed=0",
            "--repeats",
            "4",
            "--output_path",
            str(run_dir),
            *extra,
        ]
    )


def content(run_dir: Path) -> dict[str, list[tuple]]:
    """Every row of the run's tables, plus its configuration."""
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        found = {
            t: db.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in TABLES.items()
        }
        found["config"] = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchall()
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole run and its three shards, each generated once."""
    root = tmp_path_factory.mktemp("runs")
    made = {"whole": root / "whole"}
    run(made["whole"])
    for i in range(3):
        made[f"s{i}"] = root / f"s{i}"
        run(made[f"s{i}"], "--shard", f"{i}/3")
    return made


def shards(runs: dict[str, Path]) -> list[Path]:
    return [runs["s0"], runs["s1"], runs["s2"]]


def test_merged_shards_equal_the_unsharded_run(runs: dict[str, Path], tmp_path: Path) -> None:
    # Shards hold the problems at dataset indices i, i+3, ...: disjoint, together all 14.
    ids = [sorted({row[1] for row in content(runs[f"s{i}"])["docs"]}) for i in range(3)]
    assert ids == [list(range(i, 14, 3)) for i in range(3)]

    merged = tmp_path / "merged"
    main(["merge", *map(str, shards(runs)), "--output", str(merged)])
    whole = content(runs["whole"])
    assert content(merged) == whole  # same prompts (hashes), samples, counts, configuration
    assert len(whole["samples"]) == 14 * 4
    assert rescore_run(merged) == rescore_run(runs["whole"])
    assert list(sample_records(merged)) == list(sample_records(runs["whole"]))


def test_merge_twice_and_a_shard_run_twice_change_nothing(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    merged = tmp_path / "merged"
    merge_shards(shards(runs), merged)
    first = content(merged)
    merge_shards(shards(runs), merged)  # again, into the same directory
    assert content(merged) == first

    # Shard 1 run a second time (as when retried on another node): same samples.
    again = tmp_path / "s1-again"
    run(again, "--shard", "1/3")
    twice = tmp_path / "twice"
    result = merge_shards([*shards(runs), again, runs["s2"]], twice)
    assert (result.shards, result.problems, result.samples) == (3, 14, 56)
    assert content(twice) == first


def test_missing_shard_is_named(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MonkeysError, match=r"missing shard 1/3 of 3 .*--shard 1/3"):
        merge_shards([runs["s0"], runs["s2"]], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()  # checked before anything is written


def test_overlapping_shards_that_differ_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    changed = tmp_path / "s1-changed"
    shutil.copytree(runs["s1"], changed)
    with sqlite3.connect(changed / "samples.sqlite") as db:
        db.execute("UPDATE samples SET completion = 'other' WHERE doc_id = 4 AND sample_idx = 2")
    merged = tmp_path / "merged"
    with pytest.raises(
        MonkeysError,
        match=r"shard 1/3 .* overlap with different samples .*samples monkeys_gsm8k 4 2",
    ):
        merge_shards([*shards(runs), changed], merged)
    assert not (merged / "samples.sqlite").exists() or not content(merged)["samples"]

    # A merged store that already holds other samples is not overwritten either.
    merge_shards(shards(runs), merged)
    with pytest.raises(MonkeysError, match="already holds different samples"):
        merge_shards([runs["s0"], changed, runs["s2"]], merged)


def test_shard_of_another_configuration_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "s1-seed1"
    shutil.copytree(runs["s1"], other)
    with sqlite3.connect(other / "samples.sqlite") as db:  # as if run with seed=1
        (config,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        config = config.replace('"seed": 0', '"seed": 1')
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (config,))
    with pytest.raises(MonkeysError, match=r"come from different runs \(changed: seed\)"):
        merge_shards([runs["s0"], other, runs["s2"]], tmp_path / "merged")


def test_incomplete_shard_is_named(runs: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "s2-cut"
    shutil.copytree(runs["s2"], cut)
    with sqlite3.connect(cut / "samples.sqlite") as db:  # as if killed mid-run
        db.execute("DELETE FROM samples WHERE doc_id = 5 AND sample_idx >= 2")
    with pytest.raises(
        MonkeysError,
        match=r"shard 2/3 \(.*s2-cut\) is incomplete: 1 problems .*monkeys_gsm8k doc 5: 2 of 4",
    ):
        merge_shards([runs["s0"], runs["s1"], cut], tmp_path / "merged")


def test_bad_shard_flags_are_clear_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--shard must be i/N with 0 <= i < N, got '3/3'"):
        run(tmp_path / "bad", "--shard", "3/3")
    with pytest.raises(
        SystemExit, match=r"holds shard 0/3; use a new --output_path for --shard 1/3"
    ):
        run(runs["s0"], "--shard", "1/3")
    with pytest.raises(SystemExit, match=r"holds shard 0/3; use a new --output_path for a run wit"):
        run(runs["s0"])
    with pytest.raises(SystemExit, match="--shard writes each shard's samples to its own store"):
        main([*RUN, "--shard", "0/2"])


def test_shard_verdicts_and_rewards_carry_into_the_merge(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    copies = []
    for i, shard in enumerate(shards(runs)):
        copies.append(tmp_path / f"s{i}")
        shutil.copytree(shard, copies[-1])
        rescore_run(copies[-1])  # fills the shard's verdicts table
        store = SampleStore(copies[-1])
        ids = [row[1:3] for row in content(copies[-1])["samples"]]
        store.rewards.add("rm", [("monkeys_gsm8k", d, s, d + s / 10) for d, s in ids])
        store.close()
    merged = tmp_path / "merged"
    merge_shards(copies, merged)
    with sqlite3.connect(merged / "samples.sqlite") as db:
        verdicts = db.execute("SELECT * FROM verdicts ORDER BY 1, 2, 3, 4").fetchall()
        rewards = db.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    shard_verdicts = set()
    for copy in copies:
        with sqlite3.connect(copy / "samples.sqlite") as db:
            shard_verdicts |= set(db.execute("SELECT * FROM verdicts").fetchall())
    assert set(verdicts) == shard_verdicts and rewards == 14 * 4
    rescore_run(merged)  # every verdict is already there: nothing new is added
    with sqlite3.connect(merged / "samples.sqlite") as db:
        assert db.execute("SELECT * FROM verdicts ORDER BY 1, 2, 3, 4").fetchall() == verdicts
