"""Reading imported samples: the hub dataset's rows or the paper code's YAML files.

Both formats hold one problem per record: ``prompt``, ``question``, ``samples`` and
``gt_answer`` (GSM8K, MATH), ``test_cases`` (CodeContests YAML) or ``theorem_name``
(MiniF2F YAML), and ``is_corrects`` once the paper's evaluation ran; the hub's
CodeContests configs name their problem by ``orig_dset_idx`` (its index in
``deepmind/code_contests``'s test split). Records are read one at a time, so memory does
not grow with the number of problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lm_eval_monkeys.errors import MonkeysError

HUB_DATASET = "ScalingIntelligence/monkey_business"
# The config's prefix (before the first "_") names its benchmark.
BENCHMARKS = {
    "gsm8k": "gsm8k",
    "math": "math",
    "codecontests": "codecontests",
    "minif2f-math": "minif2f",
    "minif2f": "minif2f",
}


@dataclass(frozen=True)
class SourceProblem:
    """One problem as the source recorded it (``where`` names the file or row)."""

    where: str
    question: str
    prompt: str
    samples: list[Any]
    is_corrects: list[Any] | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class SourceProblems:
    """A source's problems: how many (for the progress bar's rate and ETA), then each one
    as it is read."""

    count: int
    records: Iterable[SourceProblem]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[SourceProblem]:
        return iter(self.records)


@dataclass(frozen=True)
class Source:
    """Where imported samples come from, as the run record keeps it."""

    location: str  # a hub dataset id, a local copy of one config, or a YAML directory
    form: str  # "hub" or "yaml"
    benchmark: str
    model: str
    config: str | None = None
    revision: str | None = None

    @property
    def name(self) -> str:
        """The source's short name, under which its verdicts are kept."""
        return self.config or f"{self.benchmark}_{self.model}"

    def describe(self) -> dict[str, str | None]:
        return {
            "location": self.location,
            "format": self.form,
            "config": self.config,
            "model": self.model,
            "revision": self.revision,
        }

    def problems(self) -> SourceProblems:
        if self.form == "yaml":
            paths = sorted(Path(self.location).glob("*.yaml"))
            return SourceProblems(len(paths), _yaml_problems(paths))
        return self._rows()

    def _rows(self) -> SourceProblems:
        import datasets

        local = Path(self.location)
        if local.is_dir() and self.config and (local / f"{self.config}.json").is_file():
            local = local / f"{self.config}.json"
        try:
            if local.is_file():
                kind = "parquet" if local.suffix == ".parquet" else "json"
                rows = datasets.load_dataset(kind, data_files=str(local), split="train")
            else:
                rows = datasets.load_dataset(
                    self.location, self.config, split="test", revision=self.revision
                )
        except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as err:
            raise MonkeysError(
                f"cannot read {self.config or ''} from {self.location} ({_first_line(err)}); "
                "pass a local copy of the config's JSON file, or make the hub reachable"
            ) from None
        return SourceProblems(
            len(rows), (_problem(f"row {index}", row) for index, row in enumerate(rows))
        )


def resolve_source(
    location: str,
    config: str | None,
    benchmark: str | None,
    model: str | None,
    revision: str | None,
) -> Source:
    """The source a user named: a YAML directory, a local copy of a hub config, or a hub
    config name; the benchmark and model come from the config name unless given."""
    path = Path(location)
    if path.is_dir() and any(path.glob("*.yaml")):
        form = "yaml"
    elif path.exists():
        form = "hub"
        config = config or (path.stem if path.is_file() else None)
    elif location.count("/") == 1:
        form = "hub"
    else:
        raise MonkeysError(
            f"{location} is neither a directory of YAML files, a local copy of a hub "
            f"config, nor a hub dataset id; pass one of those (e.g. {HUB_DATASET} --config "
            "GSM8K_Llama-3-8B-Instruct)"
        )
    if form == "hub" and not config:
        raise MonkeysError(
            f"{location}: name the config to import with --config (e.g. GSM8K_Llama-3-8B-Instruct)"
        )
    prefix, _, config_model = (config or "").partition("_")
    chosen = benchmark or BENCHMARKS.get(prefix.lower())
    if chosen not in BENCHMARKS.values():
        raise MonkeysError(
            f"cannot tell which benchmark {location} holds; pass --benchmark with one of "
            f"{', '.join(sorted(set(BENCHMARKS.values())))}"
        )
    model = model or config_model
    if not model:
        raise MonkeysError(f"{location}: name the model that wrote the samples with --model")
    assert chosen is not None
    return Source(location, form, chosen, model, config, revision)


def _yaml_problems(paths: list[Path]) -> Iterator[SourceProblem]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x
    for path in paths:
        try:
            record = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise MonkeysError(
                f"cannot read {path} ({_first_line(err)}); fix or remove it"
            ) from None
        if not isinstance(record, dict):
            raise MonkeysError(f"{path} is not a problem record (a mapping); remove it")
        yield _problem(path.name, record)


def _problem(where: str, record: dict[str, Any]) -> SourceProblem:
    samples = record.get("samples")
    if not isinstance(samples, list):
        raise MonkeysError(f"{where} has no list of samples; is it a problem record?")
    corrects = record.get("is_corrects")
    if corrects is not None and len(corrects) != len(samples):
        raise MonkeysError(
            f"{where}: {len(corrects)} is_corrects for {len(samples)} samples; the record "
            "is damaged: re-export it, or drop is_corrects to import without its verdicts"
        )
    fields = {k: v for k, v in record.items() if k not in ("samples", "is_corrects")}
    return SourceProblem(
        where=where,
        question=str(record.get("question") or ""),
        prompt=str(record.get("prompt") or ""),
        samples=samples,
        is_corrects=corrects,
        fields=fields,
    )


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
