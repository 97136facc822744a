"""Registered model versions are immutable: after a retrain into the same folder, version 1 still resolves to
version 1's weights (real training, a real MLflow sqlite store); aliases, clear errors, tampering refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1ci_core import lineage, versions
from r1ci_core.rollout.tiny import make_tiny_policy

NAME = "r1ci-unit-sft"


def _weights(folder: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "model.safetensors"))


@pytest.fixture(scope="module")
def retrained(eval_env, eval_items):
    """Train into one work folder twice (seeds 0 and 1), registering after each, as sft_checkpoint does."""
    from r1ci_core.config import load_recipe

    recipe = load_recipe("tiny")
    work = eval_env / "data" / "unit" / "sft_checkpoint"
    snapshots, numbers = [], []
    for seed in (0, 1):
        make_tiny_policy(work, eval_items, n_teach=2, steps=15, seed=seed)
        snapshots.append({k: v.clone() for k, v in _weights(work).items()})
        with lineage.asset_run(recipe.mlflow, "sft_checkpoint"):
            numbers.append(lineage.register_checkpoint(work, NAME))
    return work, snapshots, numbers


def test_old_version_keeps_its_weights_after_retrain(retrained):
    work, (first, second), numbers = retrained
    assert numbers == ["1", "2"]
    name = next(iter(first))
    assert not torch.equal(first[name], second[name]), "the two trainings gave the same weights"
    assert torch.equal(_weights(work)[name], second[name])  # the work folder now holds the retrain

    v1 = versions.resolve(f"models:/{NAME}/1")
    assert v1.key == f"{NAME}/1" and not Path(v1.path).is_relative_to(work)
    for key, tensor in first.items():
        assert torch.equal(_weights(v1.path)[key], tensor), key
    v2 = versions.resolve(f"{NAME}/2")
    assert torch.equal(_weights(v2.path)[name], second[name])
    assert versions.resolve(f"models:/{NAME}/latest").version == "2"
    cand = versions.resolve(f"models:/{NAME}@candidate")
    assert cand.version == "2" and "candidate" in cand.aliases


def test_version_loads_with_stock_mlflow_and_transformers(retrained):
    import mlflow
    from transformers import AutoModelForCausalLM

    _, (first, _), _ = retrained
    path = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1")
    model = AutoModelForCausalLM.from_pretrained(path)
    name = next(k for k in first if k in model.state_dict())
    assert torch.equal(model.state_dict()[name], first[name])


def test_evaluation_resolves_the_version_not_the_work_folder(retrained):
    from r1ci_core.evaluation import checkpoint_fingerprint, resolve_checkpoint

    work, _, _ = retrained
    spec = resolve_checkpoint("old", f"models:/{NAME}/1")
    assert spec.model_version == f"{NAME}/1"
    assert checkpoint_fingerprint(spec.path) != checkpoint_fingerprint(work)
    assert checkpoint_fingerprint(spec.path) == versions.resolve(f"{NAME}/1").fingerprint
    # a version is found from a folder by content: the work folder is version 2's weights
    assert versions.find_version(NAME, checkpoint_fingerprint(work)) == "2"


def test_figures_tags_and_champion(retrained):
    from mlflow.tracking import MlflowClient

    versions.record_evaluation(f"{NAME}/1", {"autonomous.accuracy": 0.5, "autonomous.n": 4}, "qs")
    versions.record_evaluation(f"{NAME}/2", {"autonomous.accuracy": 0.25, "autonomous.n": 4}, "qs")
    metric = "r1ci.eval.autonomous.accuracy"
    assert versions.update_champion(NAME, "qs", metric) == "1"
    tags = MlflowClient().get_model_version(NAME, "1").tags
    assert tags[metric] == "0.5000" and tags["r1ci.eval.items"] == "qs"
    # a tie keeps the champion; figures on other questions do not compete
    versions.record_evaluation(f"{NAME}/2", {"autonomous.accuracy": 0.5}, "qs")
    assert versions.update_champion(NAME, "qs", metric) == "1"
    versions.record_evaluation(f"{NAME}/2", {"autonomous.accuracy": 0.9}, "other")
    assert versions.update_champion(NAME, "qs", metric) == "1"
    assert versions.resolve(f"{NAME}@champion").version == "1"
    assert "r1ci.eval.autonomous.n" not in MlflowClient().get_model_version(NAME, "2").tags  # replaced


def test_registry_state_reads_versions_tags_and_aliases_at_once(retrained):
    # what model_version_eval keys its reuse on: the same as asking version by version, alias by alias
    state = versions.registry_state(NAME)
    assert state == ([[n, versions.evaluated_on(NAME, str(n))] for n in versions.version_numbers(NAME)]
                     + [[alias, versions.alias_version(NAME, alias)] for alias in (versions.CANDIDATE, versions.CHAMPION)])
    assert [row[0] for row in state] == [1, 2, "candidate", "champion"] and state[2][1] == "2"
    assert versions.registry_state("r1ci-nobody-sft") == [["candidate", None], ["champion", None]]


@pytest.mark.parametrize("uri,message", [
    (f"models:/{NAME}/7", "has no version 7 (versions: [1, 2])"),
    (f"models:/{NAME}@nope", "has no alias 'nope'"),
    ("models:/r1ci-nobody-sft/1", "has no version in the MLflow registry"),
    (f"models:/{NAME}/one", "cannot read the model URI"),
])
def test_unknown_versions_are_clear_errors(retrained, uri, message):
    with pytest.raises(versions.VersionError, match=re.escape(message)):
        versions.resolve(uri)


def test_changed_artifacts_are_refused(eval_env, tiny_checkpoints):
    import shutil

    from r1ci_core.config import load_recipe

    src = eval_env / "tamper_src"
    shutil.copytree(tiny_checkpoints["base"], src)
    with lineage.asset_run(load_recipe("tiny").mlflow, "sft_checkpoint"):
        number = lineage.register_checkpoint(src, "r1ci-tamper-sft")
    path = Path(versions.resolve(f"r1ci-tamper-sft/{number}").path)
    (path / "config.json").write_text((path / "config.json").read_text().replace("{", "{\"x\": 1, ", 1))
    with pytest.raises(versions.VersionError, match="changed since registration"):
        versions.resolve(f"r1ci-tamper-sft/{number}")
