"""Up-front checks of a recipe against this machine, before any stage runs.

`check(recipe, data_root)` raises one error (a `RecipeError` or `OSError`) whose message names the
problem and the fix in one line: unknown or unavailable task families, a missing BBH folder, malformed
custom task files, a model that is missing / of another architecture / without a chat template, unknown
TRL keys in the `sft` / `grpo` sections, unknown GRPO rewards, a data folder that cannot be
written, an MLflow tracking server that does not answer. The stages check the same things again (they
also run without the CLI); here they fail in a second instead of after an hour of earlier stages.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import json
import os
import re
import tempfile
from pathlib import Path

from .config import Recipe, RecipeError

# the architectures `models.load_model` accepts
MODEL_TYPES = ("qwen2", "qwen3", "llama")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check(recipe: Recipe, data_root: Path, *, training: bool = True) -> None:
    """Every check below, cheapest first; `training=False` skips the TRL-section checks (slow import)."""
    check_tasks(recipe)
    check_model_ref(recipe.model.name_or_path, recipe.model.local_files_only, key="model.name_or_path")
    if recipe.teacher.kind == "model" and recipe.teacher.backend != "openai" and recipe.teacher.model:
        check_model_ref(recipe.teacher.model, recipe.model.local_files_only, key="teacher.model")
    check_data_dir(data_root)
    check_tracking(recipe)
    if training:
        check_training_sections(recipe)


def check_tasks(recipe: Recipe) -> None:
    from .corpus import select_families

    try:
        families = select_families(recipe.tasks)
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"recipe tasks: {str(err).splitlines()[0]}") from None
    if not families:
        raise RecipeError("recipe tasks: no task family is available: list families in tasks.families "
                          "(see `r1ci tasks list`)")


def check_model_ref(ref: str, local_files_only: bool = True, *, key: str = "model.name_or_path") -> None:
    """A checkpoint folder or cached hub id that `models.load_model` / `load_tokenizer` can use."""
    if ref == "tiny" and key == "model.name_or_path":
        return
    if ref.startswith("gguf:") and key == "model.name_or_path":
        from .models import ModelLoadError, find_gguf

        try:
            find_gguf(ref)
        except ModelLoadError as err:
            raise RecipeError(str(err)) from None
        return
    path = Path(ref).expanduser()
    if path.exists():
        check_checkpoint_dir(path, key=key)
        return
    looks_local = ref.startswith(("/", ".", "~")) or not _HUB_ID.match(ref) or ref.count("/") > 1
    if looks_local:
        raise RecipeError(f"{key} {ref!r} does not exist: give a checkpoint folder (config.json, weights, "
                          "tokenizer) or a hub id such as Qwen/Qwen2.5-0.5B-Instruct")
    if local_files_only:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref, "config.json")
        if not isinstance(cached, str):
            raise RecipeError(f"{key} {ref!r} is neither a folder nor a hub model in the local cache: download it "
                              f"(`huggingface-cli download {ref}`) or set model.local_files_only: false")
        check_checkpoint_dir(Path(cached).parent, key=key, ref=ref)


def check_checkpoint_dir(path: Path, *, key: str = "model.name_or_path", ref: str | None = None) -> None:
    """config.json of a Qwen2-family causal LM, weights, and a tokenizer with a chat template."""
    name = ref or str(path)
    if not path.is_dir():
        raise RecipeError(f"{key} {name!r} is a file, not a checkpoint folder: give the folder that holds "
                          "config.json, the weights and the tokenizer")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise RecipeError(f"{key} {name!r} has no config.json: give a Hugging Face checkpoint folder "
                          "(save_pretrained output)")
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise RecipeError(f"{key} {name!r}: config.json is not valid JSON ({err}): re-save the checkpoint") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in MODEL_TYPES:
        raise RecipeError(f"{key} {name!r} is a {model_type!r} model; r1ci needs a Qwen2-family causal LM "
                          f"({', '.join(MODEL_TYPES)}): choose a checkpoint of that architecture")
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") or p.name.endswith(".index.json")]
    if ref is None and not weights:
        raise RecipeError(f"{key} {name!r} has no weights (*.safetensors / *.bin): re-save the checkpoint "
                          "with save_pretrained")
    if not _has_chat_template(path):
        raise RecipeError(f"the tokenizer of {key} {name!r} has no chat template: add a `chat_template` to its "
                          "tokenizer_config.json (e.g. copy the one of the matching -Instruct model)")


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    if (path / "additional_chat_templates").is_dir():
        return True
    cfg = path / "tokenizer_config.json"
    if not cfg.is_file():
        return False
    try:
        return bool(json.loads(cfg.read_text()).get("chat_template"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def check_data_dir(root: Path) -> None:
    """The artifact folder exists (or can be made) and takes a file."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".r1ci-write-probe-", dir=root)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        fixes = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable",
                 errno.EPERM: "is not writable", errno.ENOSPC: "is on a full disk", errno.EDQUOT: "is over quota",
                 errno.ENOTDIR: "is not a folder", errno.EEXIST: "is a file, not a folder"}
        what = fixes.get(err.errno, f"cannot be written ({err.strerror or err})")
        raise RecipeError(f"data folder {root} {what}: set R1CI_DATA_DIR to a writable folder with free space") from None


def check_tracking(recipe: Recipe) -> None:
    from .lineage import check_reachable, tracking_uri

    check_reachable(tracking_uri(recipe.mlflow))


def check_training_sections(recipe: Recipe) -> None:
    """Keys of `sft` / `grpo`: r1ci's own (typed fields of `config.SftSection` / `GrpoSection`, checked when the
    recipe loads) or `trl.SFTConfig` / `trl.GRPOConfig` fields; GRPO reward names.

    (Values are judged by TRL when training starts; building the configs here could refuse what the
    stages, with their own defaults, accept.)
    """
    from .rewards import recipe_rewards

    try:
        recipe_rewards(recipe)
    except ValueError as err:
        raise RecipeError(f"recipe grpo.rewards: {err}") from None
    if not recipe.sft.trl and not recipe.grpo.trl:
        return
    try:
        from trl import GRPOConfig, SFTConfig
    except ImportError:  # the training stages will say what is missing
        return
    for name, cls, section in (("sft", SFTConfig, recipe.sft), ("grpo", GRPOConfig, recipe.grpo)):
        own = sorted(type(section).model_fields)
        known = {f.name for f in dataclasses.fields(cls)} | set(own)
        for key in section.trl:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise RecipeError(f"recipe {name}: unknown key {key!r} ({hint}the keys of this section are "
                                  f"trl.{cls.__name__} fields and {', '.join(own)})")
