"""Recipe schema: one YAML file per model profile, validated strictly (unknown keys are errors)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
DEFAULT_RECIPE = "smollm2-135m"  # the embedded default: a real pretrained model read offline (recipes/)


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the problem and the fix in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TinyModelConfig(_Section):
    """Shape of the embedded tiny Qwen2 model and its locally trained tokenizer."""

    vocab_size: PositiveInt = 1024
    hidden_size: PositiveInt = 192
    num_hidden_layers: PositiveInt = 4
    num_attention_heads: PositiveInt = 4
    num_key_value_heads: PositiveInt = 2
    intermediate_size: PositiveInt = 512
    max_position_embeddings: PositiveInt = 2048


class ModelConfig(_Section):
    """Which model the pipeline starts from: `tiny` builds the embedded test model; `gguf:<file>` imports a
    GGUF checkpoint (a path, or `<package>/<file>` in an installed Python package); else a checkpoint folder
    or a hub id in the local cache."""

    name_or_path: str = "tiny"
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    local_files_only: bool = True
    attn_implementation: str | None = None


class TasksConfig(_Section):
    """Which families, how many questions per pool, and the split."""

    families: list[str] = Field(default_factory=list, description="family names; empty = every available family")
    split_overrides: dict[str, Literal["train", "test"]] = Field(default_factory=dict)
    bbh_dir: str | None = Field(default=None, description="folder of the official BBH <family>.json files")
    custom_tasks: list[str] = Field(default_factory=list, description="JSONL files of custom task families")
    n_sft: PositiveInt = 70
    n_grpo: PositiveInt = 20
    n_test_seen: PositiveInt = 20
    n_test_unseen: PositiveInt = 20
    seed: int = 0


class SandboxConfig(_Section):
    """Limits of every code execution (see `r1ci_core.sandbox`)."""

    timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False, description="wall seconds per program")
    memory_mb: PositiveInt = Field(default=1024, description="MiB of address space per program (never unlimited)")
    isolation: Literal["auto", "bwrap", "unshare", "none"] = "auto"
    workers: PositiveInt = 2
    persistent: bool = Field(default=False, description="a trajectory's code calls share one Python interpreter "
                             "(its own; needs isolation); false: every call starts fresh, as in R1-CI")

    @model_validator(mode="after")
    def _persistent_needs_isolation(self) -> SandboxConfig:
        if self.persistent and self.isolation == "none":
            from .sandbox.settings import PERSISTENT_NEEDS_ISOLATION

            raise ValueError(PERSISTENT_NEEDS_ISOLATION)
        return self

    @field_validator("timeout_s", "memory_mb", "workers", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML `true` would otherwise be read as 1 (a 1 MiB / 1 s limit)
            raise ValueError("must be a number, not a boolean")
        return value


class RolloutConfig(_Section):
    """Limits of the multi-turn loop shared by teachers, GRPO and evaluation."""

    max_code_calls: PositiveInt = 5
    max_turns: PositiveInt = 8
    max_new_tokens: PositiveInt = 512
    output_chars: PositiveInt = 1000
    output_tokens: PositiveInt = 256
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    batch_size: PositiveInt = 16
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    # transformers backend: the precision of each turn's prompt forward (prefill); decoding stays in the model's
    # dtype. bfloat16 autocast halves a CPU prefill with avx512_bf16 (benchmarks/decode_bench.py), while fp32
    # decoding steps are faster than bf16 ones there.
    prefill_dtype: Literal["model", "bfloat16"] = "model"


class TeacherConfig(_Section):
    """Who writes the SFT trajectories (see `r1ci_core.teachers`).

    `reference`: each family's reference solution turned into R1-CI trajectories, code really executed
    (no model). Most are plain (reasoning, code, output, answer); `recovery_share` of them first run a
    failing attempt and then the fixed program; `text_only_share` of the easy families' ones answer in text.
    `model`: any rollout backend with the R1-CI system prompt, `samples_per_question` samples per question.
    """

    kind: Literal["reference", "model"] = "reference"
    samples_per_question: PositiveInt = 1
    seed: int = 0
    shard_size: PositiveInt = Field(default=64, description="questions per resumable shard")
    # reference teacher
    recovery_share: float = Field(default=0.1, ge=0.0, le=1.0,
                                  description="share with a failing first attempt and a corrected one")
    recovery_kinds: list[Literal["error", "no_output", "wrong_value"]] = Field(
        default_factory=lambda: ["error", "no_output", "wrong_value"], min_length=1)
    text_only_share: float = Field(default=0.1, ge=0.0, le=1.0,
                                   description="share of the easy families' trajectories answered in text only")
    text_only_families: list[str] | None = Field(
        default=None, description="easy families; None = r1ci_core.teachers.EASY_FAMILIES")
    trivial_reference: Literal["skip", "text_only", "code"] = Field(
        default="skip", description="families whose reference only prints the stored answer")
    # model teacher
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model: str | None = Field(default=None, description="checkpoint path, hub id, or the endpoint's model name")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (backend: openai)")
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        if self.recovery_share + self.text_only_share > 1.0:
            raise ValueError("recovery_share + text_only_share must be at most 1")
        if self.kind == "model" and self.backend != "openai" and not self.model:
            raise ValueError(f"teacher.kind 'model' with backend {self.backend!r} needs teacher.model (a path)")
        if self.kind == "model" and self.backend == "openai" and not (self.base_url or self.model):
            raise ValueError("teacher.kind 'model' with backend 'openai' needs teacher.base_url or teacher.model")
        return self


class FilterConfig(_Section):
    """The SFT filter (see `r1ci_core.filtering`): correct, capped, deduplicated, decontaminated, short enough."""

    cap_per_family: PositiveInt = 70
    max_tokens: PositiveInt = 2048
    near_duplicate: float = Field(default=0.8, gt=0.0, le=1.0,
                                  description="Jaccard of assistant word 3-grams (same question) that counts as a near "
                                              "duplicate (so do the same programs with the same answer)")
    decontaminate: bool = True
    decontam_ngram: PositiveInt = Field(default=13, description="n-gram length (words and punctuation)")
    decontam_template_df: PositiveInt = Field(
        default=5, description="n-grams in at least this many distinct questions are template text, ignored")
    code_share: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="balance: share of code-using trajectories to keep; None = off")
    seed: int = 0


class DynamicSamplingConfig(_Section):
    """`grpo.dynamic_sampling` (DAPO's `filter_groups`, see `r1ci_core.grpo_batch`): a group whose rewards all agree
    is dropped and a fresh prompt rolled out in its place, for at most `max_rounds` extra generation rounds per
    step; groups still uniform then stay in the batch with no loss (as `filter_uniform_groups` does)."""

    enabled: bool = False
    max_rounds: PositiveInt = Field(default=3, description="extra generation rounds per step at most")


class OnlineDifficultyConfig(_Section):
    """`curriculum.online` (see `r1ci_core.curriculum.OnlineDifficulty`): each family's pass rate p re-estimated
    from GRPO's own groups (an exponential moving average, starting from `task_difficulty`'s p, else 0.5), and the
    prompts of every step drawn by family with weight max(floor, 4p(1-p))."""

    enabled: bool = False
    ema: float = Field(default=0.3, gt=0.0, le=1.0, description="weight of a new group's pass rate in the average")
    floor: float = Field(default=0.05, gt=0.0, le=1.0, description="least weight of a family (none starves)")


class CurriculumConfig(_Section):
    """GRPO curriculum (see `r1ci_core.curriculum`): families by improvement potential 4p(1-p), in stages.

    `task_difficulty` samples the SFT model `samples_per_family` times per training family (over up to
    `questions_per_family` GRPO questions) for its pass rate p; GRPO then trains stage by stage, from high to
    low potential for `stage_steps` steps each (empty = grpo.max_steps shared evenly), each stage adding the next
    group of families to those it samples (`cumulative`; else a stage samples its own group only).
    """

    enabled: bool = False
    online: OnlineDifficultyConfig = OnlineDifficultyConfig()
    samples_per_family: PositiveInt = Field(default=20, description="k: samples per family (paper: 20)")
    questions_per_family: PositiveInt = 5
    n_stages: PositiveInt = Field(default=4, description="stages, high potential first (paper: 4)")
    stage_steps: list[PositiveInt] = Field(default_factory=list)
    cumulative: bool = Field(default=True, description="stage k samples the families of stages 1..k (paper)")
    exclude_settled: bool = Field(
        default=False, description="leave out of GRPO the families the SFT model always or never solves (p 0 or 1)")
    temperature: float | None = Field(default=None, ge=0.0, description="sampling temperature; None = grpo's")
    prompts_per_family: PositiveInt | None = Field(
        default=None, description="each GRPO step draws this many prompts per family it trains on (the stages' "
                                  "families): gradient_accumulation_steps follows from it, so every step has the "
                                  "same family mix whatever number of families is left open; None: the grpo "
                                  "section's batch decides")
    measure_after: bool = Field(
        default=True, description="after GRPO, measure each family's pass rate again as task_difficulty did "
                                  "(the same k samples on the same questions): logged as pass_rate_after.*")


class _TrainingSection(BaseModel):
    """A training section: r1ci's own keys as typed fields; every other key is a TRL config field, kept as
    written (`trl`) and checked against the TRL dataclass by `preflight` and at train time (importing TRL here
    would make every recipe load slow)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @property
    def trl(self) -> dict[str, Any]:
        """The TRL config fields the recipe sets (a copy; r1ci's own keys left out)."""
        return dict(self.model_extra or {})

    def written(self) -> dict[str, Any]:
        """The section as the recipe wrote it (r1ci keys set explicitly, TRL fields): for cache keys and params."""
        return self.model_dump(exclude_unset=True)


class SftSection(_TrainingSection):
    """`sft:` — `trl.SFTConfig` fields plus r1ci's keys below (see `r1ci_core.sft`, `r1ci_core.launch`)."""

    lora: dict[str, Any] | None = Field(
        default=None, description="peft.LoraConfig fields: LoRA instead of full fine-tuning (merged when saved)")
    num_processes: PositiveInt = Field(default=1, description="above 1: the stage runs under `accelerate launch`")
    accelerate_config: str = Field(
        default="ddp", description="recipes/accelerate/<name>.yaml (ddp, fsdp, zero2, zero3) or an accelerate YAML")
    varlen_attention: bool = Field(
        default=True, description="with packing / padding_free and sdpa: attention per packed sequence")

    @field_validator("num_processes", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        return value


class GrpoSection(_TrainingSection):
    """`grpo:` — `trl.GRPOConfig` fields plus r1ci's keys below (see `r1ci_core.grpo`, `r1ci_core.rewards`)."""

    rewards: str | list[str] | dict[str, float] | None = Field(
        default=None, description="reward names (weight 1 each) or name -> weight; None = rewards.DEFAULT_REWARDS")
    filter_uniform_groups: bool = Field(
        default=False, description="mask groups whose rewards all agree from the loss (logged: filtered_groups)")
    dynamic_sampling: DynamicSamplingConfig = Field(
        default_factory=DynamicSamplingConfig, description="drop uniform groups, roll out fresh prompts instead")
    tito_check: bool = Field(default=True, description="count token-in-token-out mismatches per trajectory")


Mode = Literal["autonomous", "text_only", "code_first"]


class EvalConfig(_Section):
    checkpoints: list[str] = Field(default_factory=lambda: ["base", "sft", "grpo"])
    modes: list[Mode] = Field(default_factory=lambda: ["autonomous"])
    # per checkpoint name (base/sft/grpo or a models:/ entry), modes that replace `modes` for it, e.g. the
    # paper's three modes on the final model only: {grpo: [autonomous, text_only, code_first]}
    modes_by_checkpoint: dict[str, list[Mode]] = Field(default_factory=dict)
    pools: list[Literal["test_seen", "test_unseen"]] = Field(default_factory=lambda: ["test_seen", "test_unseen"])
    # per mode, the pools (of `pools`) it is evaluated on instead of all of them, e.g. the text-only and
    # code-first comparison on the seen families only: {text_only: [test_seen], code_first: [test_seen]}
    pools_by_mode: dict[Mode, list[Literal["test_seen", "test_unseen"]]] = Field(default_factory=dict)
    max_infra_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    # sampled evaluation, beside the greedy headline: with temperature > 0 every checkpoint and mode is also
    # rolled out `samples` times per question at that temperature (seeded by the recipe's seed): pass@k, avg@n
    samples: PositiveInt = Field(default=1, description="samples per question of the sampled evaluation (n)")
    temperature: float = Field(default=0.0, ge=0.0, description="its sampling temperature; 0 = greedy only")

    @model_validator(mode="after")
    def _known_checkpoints(self) -> EvalConfig:
        unknown = sorted(set(self.modes_by_checkpoint) - set(self.checkpoints))
        if unknown:
            raise ValueError(f"eval.modes_by_checkpoint names {unknown}, which eval.checkpoints "
                             f"{self.checkpoints} does not evaluate")
        outside = {m: sorted(set(p) - set(self.pools)) for m, p in self.pools_by_mode.items()}
        if bad := {m: p for m, p in outside.items() if p or not self.pools_by_mode[m]}:
            raise ValueError(f"eval.pools_by_mode {bad}: each mode's pools must be a non-empty subset of "
                             f"eval.pools {list(self.pools)}")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"eval.samples: {self.samples} with eval.temperature: 0 repeats one greedy answer; "
                             "set eval.temperature > 0 (e.g. 0.7) for a sampled evaluation, or eval.samples: 1")
        return self

    def modes_for(self, checkpoint: str) -> list[str]:
        """The modes `checkpoint` is evaluated in: its `modes_by_checkpoint` entry, else `modes`."""
        return list(self.modes_by_checkpoint.get(checkpoint, self.modes))


class MlflowConfig(_Section):
    tracking_uri: str | None = None
    experiment: str = "r1ci"


class Recipe(_Section):
    """A whole recipe. `sft` and `grpo` hold r1ci's training keys and `trl.SFTConfig` / `trl.GRPOConfig` fields."""

    name: str
    seed: int = 0
    model: ModelConfig = ModelConfig()
    tasks: TasksConfig = TasksConfig()
    sandbox: SandboxConfig = SandboxConfig()
    rollout: RolloutConfig = RolloutConfig()
    teacher: TeacherConfig = TeacherConfig()
    filter: FilterConfig = FilterConfig()
    sft: SftSection = SftSection()
    grpo: GrpoSection = GrpoSection()
    curriculum: CurriculumConfig = CurriculumConfig()
    eval: EvalConfig = EvalConfig()
    mlflow: MlflowConfig = MlflowConfig()

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        """A copy with dotted-key overrides applied (`{"sft.max_steps": 2}`), validated again."""
        full, data = self.model_dump(), self.model_dump(exclude_unset=True)  # unset defaults stay unset
        for dotted, value in overrides.items():
            shape, node = full, data
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(shape.get(key), dict):
                    raise RecipeError(f"override {dotted!r}: {key!r} is not a recipe section")
                shape, node = shape[key], node.setdefault(key, {})
            node[leaf] = value
        return _validate(data, f"recipe {self.name!r} with overrides")


def _validate(data: dict[str, Any], where: str) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise RecipeError(f"{where}: unknown key {loc!r} ({_key_hint(first['loc'])})") from None
        got = repr(first.get("input"))
        got = f"; got {got[:60]}" if first["type"] not in ("missing",) and len(got) <= 60 else ""
        raise RecipeError(f"{where}: {loc}: {first['msg']}{got} (fix the recipe key {loc!r})") from None


def _key_hint(loc: tuple[Any, ...]) -> str:
    """'did you mean ...' and the valid keys of the section holding the unknown key `loc`."""
    import difflib

    model: Any = Recipe
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = getattr(field, "annotation", None) if field else None
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return "remove or rename it"
    valid = sorted(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
    section = ".".join(str(p) for p in loc[:-1]) or "the recipe"
    return (f"did you mean {close[0]!r}? " if close else "") + f"valid keys of {section}: {', '.join(valid)}"


def recipe_path(name_or_path: str) -> Path:
    """Resolve a recipe name (`tiny`) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise RecipeError(f"recipe file {path} not found (give a YAML path or one of {available_recipes()})")
        return path
    candidate = RECIPES_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise RecipeError(f"unknown recipe {name_or_path!r}: choose one of {available_recipes()} or give a YAML path")
    return candidate


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a recipe by name or path (default: `$R1CI_RECIPE` or `tiny`) and apply overrides."""
    path = recipe_path(name_or_path or os.environ.get("R1CI_RECIPE") or DEFAULT_RECIPE)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(f"recipe {path} is not valid YAML{where}: {problem} (fix the YAML syntax there)") from None
    except (UnicodeDecodeError, OSError) as err:
        raise RecipeError(f"recipe {path} cannot be read ({err}): give a UTF-8 YAML file") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of sections, got a {type(data).__name__} "
                          "(write `section:` lines with `key: value` under them, as in recipes/tiny.yaml)")
    data.setdefault("name", path.stem)
    recipe = _validate(data, f"recipe {path}")
    return recipe.with_overrides(overrides) if overrides else recipe


def data_dir() -> Path:
    """The artifact root: `$R1CI_DATA_DIR`, default `./data`."""
    return Path(os.environ.get("R1CI_DATA_DIR", "data")).resolve()
