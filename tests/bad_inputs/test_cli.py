"""Bad input through the real `r1ci` CLI: one line naming the problem and the fix, non-zero exit, no artifact.

Most cases are caught before any stage runs (recipe validation and `preflight`); the full disk and the
unknown asset selection go through `dagster asset materialize`, whose failure `r1ci run` reduces to its
root cause.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import assert_no_artifacts, assert_one_line_error, closed_port, fill, r1ci, tmpfs, write_recipe

RECIPE_CASES = [
    ("unknown_key", {"tasks": {"n_sftt": 3}}, ["unknown key 'tasks.n_sftt'", "did you mean 'n_sft'"]),
    ("unknown_section", {"trainer": {"lr": 1}}, ["unknown key 'trainer'", "valid keys of the recipe"]),
    ("wrong_type", {"tasks": {"n_sft": "many"}}, ["tasks.n_sft", "valid integer", "'many'", "fix the recipe key"]),
    ("wrong_type_list", {"tasks": {"families": "number_multiply"}}, ["tasks.families", "valid list",
                                                                      "fix the recipe key"]),
    ("negative_limit", {"tasks": {"n_sft": -3}}, ["tasks.n_sft", "greater than 0", "fix the recipe key"]),
    ("zero_limit", {"rollout": {"max_turns": 0}}, ["rollout.max_turns", "greater than 0", "fix the recipe key"]),
    ("zero_timeout", {"sandbox": {"timeout_s": 0}}, ["sandbox.timeout_s", "greater than 0", "fix the recipe key"]),
    ("negative_timeout", {"sandbox": {"timeout_s": -1}}, ["sandbox.timeout_s", "greater than 0", "fix the recipe key"]),
    ("infinite_timeout", {"sandbox": {"timeout_s": float("inf")}}, ["sandbox.timeout_s", "finite number",
                                                                    "fix the recipe key"]),
    ("zero_memory", {"sandbox": {"memory_mb": 0}}, ["sandbox.memory_mb", "greater than 0", "fix the recipe key"]),
    ("boolean_memory", {"sandbox": {"memory_mb": True}}, ["sandbox.memory_mb", "not a boolean", "fix the recipe key"]),
    ("bad_choice", {"sandbox": {"isolation": "docker"}}, ["sandbox.isolation", "'bwrap'", "'docker'"]),
    ("shares_over_one", {"teacher": {"recovery_share": 0.7, "text_only_share": 0.6}},
     ["recovery_share + text_only_share", "at most 1"]),
    ("unknown_family", {"tasks": {"families": ["number_multiply", "nope_family"]}},
     ["unknown task families", "nope_family", "r1ci tasks list"]),
    ("missing_bbh_folder", {"tasks": {"bbh_dir": "/nonexistent/bbh"}}, ["BBH folder", "/nonexistent/bbh",
                                                                        "does not exist", "point"]),
    ("missing_model_path", {"model": {"name_or_path": "/nonexistent/model"}},
     ["'/nonexistent/model' does not exist", "give a checkpoint folder"]),
    ("uncached_hub_model", {"model": {"name_or_path": "r1ci-test/not-a-cached-model"}},
     ["not-a-cached-model", "local cache", "download it"]),
    ("missing_teacher_model", {"teacher": {"kind": "model", "model": "/nonexistent/teacher"}},
     ["teacher.model", "does not exist"]),
    ("unknown_trl_key", {"sft": {"max_stepz": 3}}, ["unknown key 'max_stepz'", "did you mean 'max_steps'",
                                                    "SFTConfig"]),
    ("misspelt_r1ci_key", {"sft": {"num_procesess": 2}}, ["unknown key 'num_procesess'",
                                                          "did you mean 'num_processes'"]),
]


@pytest.mark.parametrize("patch,needles", [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES])
def test_bad_recipe(env: dict, tmp_path: Path, patch: dict, needles: list[str]) -> None:
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path, patch)))
    assert_one_line_error(out, *needles)
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


TEXT_CASES = [
    ("not_yaml", "tasks: [1\n", ["not valid YAML", "line 2", "fix the YAML syntax"]),
    ("not_a_mapping", "- tasks\n- model\n", ["must be a mapping of sections", "got a list", "recipes/tiny.yaml"]),
    ("binary_recipe", b"\xff\xfe\x00\x01tasks", ["cannot be read", "UTF-8 YAML"]),
]


@pytest.mark.parametrize("text,needles", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_unreadable_recipe(env: dict, tmp_path: Path, text: str | bytes, needles: list[str]) -> None:
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path, text=text)))
    assert_one_line_error(out, *needles)
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


def test_missing_recipe_file_and_unknown_recipe_name(env: dict, tmp_path: Path) -> None:
    assert_one_line_error(r1ci(env, "run", "--recipe", str(tmp_path / "nope.yaml")), "nope.yaml not found",
                          "give a YAML path")
    assert_one_line_error(r1ci(env, "run", "--recipe", "tinyy"), "unknown recipe 'tinyy'", "choose one of",
                          "tiny")


@pytest.mark.parametrize("content,needles", [
    (b'{"question": "2+2?", "answer": "4", "scorer": "exact"}\n{"question": "3+3?", "answer": \n',
     ["custom.jsonl:2", "not valid JSON", "fix that line"]),
    (b'{"question": "2+2?", "answer": "4", "scorer": "fuzzy"}\n', ["custom.jsonl:1", "'scorer' must be one of"]),
    (b'{"question": "2+2?", "answer": "4", "scorer": "exact"}\n\xff\xfe{"question"}\n',
     ["custom.jsonl:2", "not UTF-8", "save the file as UTF-8"]),
], ids=["malformed_json_line", "unknown_scorer", "non_utf8_file"])
def test_bad_custom_task_file(env: dict, tmp_path: Path, content: bytes, needles: list[str]) -> None:
    jsonl = tmp_path / "custom.jsonl"
    jsonl.write_bytes(content)
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path, {"tasks": {"custom_tasks": [str(jsonl)]}})))
    assert_one_line_error(out, *needles)
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


def _checkpoint(folder: Path, config: dict | None, *, weights: bool = True, tokenizer: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer or {}))
    return folder


@pytest.mark.parametrize("kind,needles", [
    ("no_chat_template", ["has no chat template", "add a `chat_template`", "tokenizer_config.json"]),
    ("other_architecture", ["is a 'gpt2' model", "Qwen2-family", "choose a checkpoint"]),
    ("no_config", ["has no config.json", "Hugging Face checkpoint folder"]),
    ("no_weights", ["has no weights", "save_pretrained"]),
    ("a_file", ["is a file, not a checkpoint folder", "give the folder"]),
])
def test_bad_model_checkpoint(env: dict, tmp_path: Path, kind: str, needles: list[str]) -> None:
    qwen = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}
    with_template = {"chat_template": "{{ messages }}"}
    path = tmp_path / "ckpt"
    if kind == "no_chat_template":
        _checkpoint(path, qwen)
    elif kind == "other_architecture":
        _checkpoint(path, {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, tokenizer=with_template)
    elif kind == "no_config":
        _checkpoint(path, None, tokenizer=with_template)
    elif kind == "no_weights":
        _checkpoint(path, qwen, weights=False, tokenizer=with_template)
    else:
        path.write_text("not a folder")
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path, {"model": {"name_or_path": str(path)}})))
    assert_one_line_error(out, *needles)
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


def test_unreachable_mlflow_tracking_server(env: dict, tmp_path: Path) -> None:
    port = closed_port()
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path)), "--select", "task_corpus", timeout=60)
    assert_one_line_error(out, "cannot reach the MLflow tracking server", f"127.0.0.1:{port}", "start the server")
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


def test_data_folder_is_a_file(env: dict, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    env["R1CI_DATA_DIR"] = str(tmp_path / "afile")
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path)), "--select", "task_corpus")
    assert_one_line_error(out, "data folder", "afile", "set R1CI_DATA_DIR to a writable folder")


def test_read_only_data_folder(env: dict, tmp_path: Path) -> None:
    data = Path(env["R1CI_DATA_DIR"])
    with tmpfs(data, "2m"):
        done = subprocess.run(["mount", "-o", "remount,ro", str(data)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path)), "--select", "task_corpus")
        assert_one_line_error(out, "read-only file system", str(data), "set R1CI_DATA_DIR to a writable folder")
        assert list(data.iterdir()) == []


def test_full_disk_during_a_stage(env: dict, tmp_path: Path) -> None:
    """The data folder fills up while task_corpus writes: Dagster's failure becomes one line; no artifact."""
    data = Path(env["R1CI_DATA_DIR"])
    with tmpfs(data, "2m"):
        fill(data, leave_kib=24)
        out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path)), "--select", "task_corpus")
        assert_one_line_error(out, "task_corpus", "no space left on device", "free some space",
                              "point R1CI_DATA_DIR at a bigger disk")
        assert "STEP_FAILURE" in out.stdout  # Dagster's own log went to stdout
        (data / "filler").unlink()
        assert_no_artifacts(data)
        assert not (data / "dagster_storage" / "task_corpus").exists()


def test_unknown_asset_selection(env: dict, tmp_path: Path) -> None:
    out = r1ci(env, "run", "--recipe", str(write_recipe(tmp_path)), "--select", "sft_chekpoint")
    assert_one_line_error(out, "sft_chekpoint", "not assets of r1ci", "choose from", "sft_checkpoint")
    assert_no_artifacts(Path(env["R1CI_DATA_DIR"]))


def test_unknown_task_family_in_tasks_sample(env: dict) -> None:
    assert_one_line_error(r1ci(env, "tasks", "sample", "number_multiplyy"), "unknown task family 'number_multiplyy'",
                          "did you mean number_multiply", "r1ci tasks list")
    assert_one_line_error(r1ci(env, "tasks", "sample", "zzzz"), "unknown task family 'zzzz'", "r1ci tasks list")


def test_missing_bbh_folder_in_tasks_list(env: dict) -> None:
    assert_one_line_error(r1ci(env, "tasks", "list", "--bbh-dir", "/nonexistent/bbh"), "BBH folder",
                          "does not exist", "point `bbh_dir`")


def test_serve_a_missing_checkpoint(env: dict, tmp_path: Path) -> None:
    assert_one_line_error(r1ci(env, "serve", str(tmp_path / "nope")), "checkpoint", "does not exist",
                          "give a checkpoint folder")


def test_eval_compare_without_a_store(env: dict, tmp_path: Path) -> None:
    out = r1ci(env, "eval", "compare", "run-a", "run-b", "--db", str(tmp_path / "none.duckdb"))
    assert_one_line_error(out, "no evaluation store", "run the eval_report stage first")
    assert not (tmp_path / "none.duckdb").exists()
    assert os.listdir(tmp_path) == ["dagster_home"]


def test_root_cause_names_the_step_even_when_its_failure_event_was_lost() -> None:
    # On a full disk Dagster may not get to log STEP_FAILURE; the step that was running is named anyway.
    from r1ci_core.errors import root_cause

    log = ("2026-01-01 00:00:00 +0000 - dagster - DEBUG - __ASSET_JOB - 13b0 - 18853 - task_corpus - STEP_START - "
           "Started execution of step \"task_corpus\".\nOSError: [Errno 28] No space left on device\n")
    assert root_cause(log) == "task_corpus: No space left on device (free some space or point R1CI_DATA_DIR at a bigger disk)"
    assert root_cause("OSError: [Errno 28] No space left on device").startswith("No space left on device")
