"""Reading the official BIG-Bench-Hard files, and the families that exist only as official data."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from ..base import Item
from .common import ANSWER_SUFFIX, CHOICE_SUFFIX, BBHTask, NoReferenceSolution

BBH_DIR_ENV = "R1CI_BBH_DIR"
HINT = (f"needs the official BIG-Bench-Hard files: set the recipe key `bbh_dir` or the env var {BBH_DIR_ENV} "
        "to a folder of <task>.json files (github.com/suzgunmirac/BIG-Bench-Hard, folder bbh/)")

# task -> (answer kind, labels, description)
OFFICIAL_ONLY: dict[str, tuple[str, tuple[str, ...], str]] = {
    "causal_judgement": ("label", ("Yes", "No"), "Answer questions about causal attribution in short stories."),
    "disambiguation_qa": ("choice", (), "Resolve the antecedent of an ambiguous pronoun."),
    "movie_recommendation": ("choice", (), "Recommend the movie most similar to a list of movies."),
    "ruin_names": ("choice", (), "Pick the humorous one-character edit of an artist or movie name."),
    "salient_translation_error_detection": ("choice", (), "Classify the error in a German-English translation."),
    "snarks": ("choice", (), "Pick the sarcastic statement."),
    "sports_understanding": ("label", ("yes", "no"), "Is a sentence about sports plausible?"),
}


def read_official(folder: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """Task -> official examples (`{"input", "target"}`) from a folder of `<task>.json` files
    (`{"examples": [...]}`, the official layout) or `<task>.jsonl` files (one example a line)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"BBH folder {str(path)!r} does not exist: point `bbh_dir` / {BBH_DIR_ENV} at a folder of the "
            "official <task>.json files")
    out: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(path.iterdir()):
        if file.suffix == ".json":
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{file}: not valid JSON ({e})") from e
            if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
                raise ValueError(f"{file}: expected an object with an 'examples' list")
            examples = data["examples"]
        elif file.suffix == ".jsonl":
            examples = []
            for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        examples.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{file}:{n}: not valid JSON ({e})") from e
        else:
            continue
        for n, ex in enumerate(examples, 1):
            if not isinstance(ex, dict) or "input" not in ex or "target" not in ex:
                raise ValueError(f"{file}: example {n} lacks 'input' or 'target'")
        out.setdefault(file.stem, []).extend(examples)
    return out


def official_item(family: BBHTask, example: dict[str, Any], index: int) -> Item:
    suffix = CHOICE_SUFFIX if family.answer_kind == "choice" else ANSWER_SUFFIX
    return Item(family=family.name, source="bbh", question=str(example["input"]) + suffix,
                answer=str(example["target"]), metadata={"official": True, "index": index})


class OfficialBBHTask(BBHTask):
    """A BBH task with no generator: it serves the official examples when the folder is given."""

    procedural = False
    has_reference_solution = False

    def __init__(self, task: str, examples: list[dict[str, Any]] | None = None, hint: str = HINT) -> None:
        self.task = task
        kind, labels, description = OFFICIAL_ONLY[task]
        self.answer_kind, self.labels, self.description = kind, labels, description
        super().__init__()
        self.available = examples is not None
        self.unavailable_hint = "" if self.available else hint
        self.items = [official_item(self, ex, i) for i, ex in enumerate(examples or [])]

    def generate(self, n: int, seed: int, split: str | None = None) -> list[Item]:
        """`n` official examples (all of them when there are fewer), sampled deterministically."""
        if not self.available:
            raise RuntimeError(f"{self.name} {self.unavailable_hint}")
        rng = random.Random(f"{self.name}:{seed}:{split or ''}")
        chosen = rng.sample(self.items, min(n, len(self.items)))
        return [Item.from_row({**it.to_row(), "split": split or ""}) for it in chosen]

    def _generate_one(self, rng: random.Random) -> Item:
        raise RuntimeError(f"{self.name} has no generator")

    def reference_solution(self, item: Item) -> str:
        raise NoReferenceSolution(f"{self.name} has no reference solution (official data only)")
