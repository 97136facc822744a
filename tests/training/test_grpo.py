"""GRPO through TRL's rollout_func: one real step with code-executing rollouts; the loss mask; infra errors."""

from __future__ import annotations

import pytest

import r1ci_core.grpo as grpo
from r1ci_core.chat import EXEC_PREFIX
from r1ci_core.models import load_tokenizer
from r1ci_core.rewards import recipe_rewards, total_rewards
from r1ci_core.sandbox import ExecResult


def _recording(captured: dict):
    """Wrap the trainer class so the test sees what TRL builds (scored batch) and what the loss uses."""
    real = grpo.make_trainer_class

    def make():
        base = real()

        class Recording(base):
            def _generate_and_score_completions(self, inputs):
                out = super()._generate_and_score_completions(inputs)
                captured.setdefault("scored", []).append(out)
                captured.setdefault("trajs", []).append(list(self.r1ci_rollout_func.last))
                captured.setdefault("prompts", []).append([x["prompt"][-1]["content"] for x in inputs])
                return out

            def _compute_loss(self, model, inputs):
                captured.setdefault("loss_inputs", []).append(inputs)
                return super()._compute_loss(model, inputs)

        return Recording

    return make


def test_one_grpo_step_with_code_execution_masks_interpreter_tokens(tmp_path, monkeypatch, tiny_policy, items,
                                                                   sandbox, small_recipe):
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _recording(captured))
    figures = grpo.train_grpo(small_recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert figures["steps"] == 1 and figures["n_rollouts"] == 4 and figures["n_infra_errors"] == 0
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "tokenizer.json").is_file()

    # without vLLM, rollout_func received each prompt repeated num_generations times (consecutively)
    prompts = captured["prompts"][0]
    assert prompts[0] == prompts[1] and prompts[2] == prompts[3]
    trajs = captured["trajs"][0]
    assert any(t.n_code_calls >= 1 for t in trajs), "the policy must write code that really runs"
    ran = [t for t in trajs if t.n_code_calls >= 1]
    assert all(t.executions[0].exit_code is not None for t in ran)

    tok = load_tokenizer(str(tiny_policy))
    inputs = captured["loss_inputs"][0]  # TRL shuffles the generated batch: find each trajectory's row
    loss_mask = inputs["completion_mask"] * inputs["tool_mask"]
    rows = [inputs["completion_ids"][r][: int(inputs["completion_mask"][r].sum())].tolist()
            for r in range(len(trajs))]
    eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
    for traj in trajs:
        completion, completion_mask = grpo.trl_completion(traj, eos)
        row = rows.index(completion)
        ids = inputs["completion_ids"][row].tolist()
        trained = tok.decode([i for i, m in zip(ids, loss_mask[row].tolist(), strict=False) if m], skip_special_tokens=False)
        masked = tok.decode([i for i, m, c in zip(ids, inputs["tool_mask"][row].tolist(),
                                                   inputs["completion_mask"][row].tolist(), strict=False) if c and not m],
                            skip_special_tokens=False)
        assert EXEC_PREFIX not in trained
        for ex in traj.executions:
            if ex.stdout.strip():
                assert ex.stdout.strip() not in trained.replace(f"<<<{traj.final_answer}>>>", "")
        if traj.n_code_calls:
            assert EXEC_PREFIX in masked  # the interpreter turn is in the sequence, with no loss
            assert "```python" in trained  # the policy's own code carries the loss
        # the loss-carrying ids are exactly the policy's own tokens
        own = [i for i, m in zip(traj.token_ids[traj.prompt_len:], traj.mask[traj.prompt_len:], strict=True) if m]
        assert [i for i, m in zip(ids, loss_mask[row].tolist(), strict=False) if m] == own
        # TRL sees a finished trajectory end with its end-of-turn token, one cut by a limit end without it
        assert (completion[-1] in eos) == (traj.finish_reason not in grpo.TRUNCATED)
        assert len(completion_mask) == len(completion)


class HalfBrokenSandbox:
    """Every other execution fails in the sandbox infrastructure (not in the program)."""

    def __init__(self, inner):
        self.inner = inner
        self.n = 0

    def run_many(self, codes, **kw):
        real = self.inner.run_many(codes, **kw)
        out = []
        for res in real:
            self.n += 1
            out.append(ExecResult(infra_error="worker crashed") if self.n % 2 else res)
        return out


def test_infra_error_samples_get_no_advantage_and_no_loss(tmp_path, monkeypatch, tiny_policy, items, sandbox,
                                                          small_recipe):
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _recording(captured))
    recipe = small_recipe.with_overrides({"grpo.per_device_train_batch_size": 8, "grpo.num_generations": 4})
    figures = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work",
                              HalfBrokenSandbox(sandbox))
    trajs = captured["trajs"][0]
    scored = captured["scored"][0]
    infra = [t.infra_error for t in trajs]
    assert any(infra), "some execution must have failed in the sandbox"
    assert figures["n_infra_errors"] == sum(infra)
    for row, bad in enumerate(infra):
        if bad:
            assert trajs[row].score is None  # excluded, never a zero reward
            assert float(scored["advantages"][row]) == 0.0
            assert int((scored["completion_mask"][row] * scored["tool_mask"][row]).sum()) == 0  # no loss
    # the baseline of a group is the mean of its scorable samples only
    funcs, weights = recipe_rewards(recipe).funcs, [1.0, 1.0, 1.0]
    totals = total_rewards(funcs, weights, completions=[None] * len(trajs), score=[t.score for t in trajs],
                                parseable=[t.parseable for t in trajs], infra_error=infra,
                                n_turns=[t.n_turns for t in trajs])
    for g in range(0, len(trajs), 4):
        group = [(row, totals[row]) for row in range(g, g + 4) if totals[row] is not None]
        if len(group) >= 2 and len({v for _, v in group}) > 1:
            mean = sum(v for _, v in group) / len(group)
            for row, v in group:
                assert (float(scored["advantages"][row]) > 0) == (v > mean) or abs(v - mean) < 1e-6


def test_uniform_groups_filtered_and_counted(tmp_path, monkeypatch, tiny_policy, items, sandbox, small_recipe):
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _recording(captured))
    recipe = small_recipe.with_overrides({"grpo.filter_uniform_groups": True})
    figures = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    scored = captured["scored"][0]
    trajs = captured["trajs"][0]
    uniform = 0
    for g in range(0, 4, 2):
        scores = [(t.score, t.parseable) for t in trajs[g:g + 2]]
        if scores[0] == scores[1]:
            uniform += 1
            assert int((scored["completion_mask"][g:g + 2] * scored["tool_mask"][g:g + 2]).sum()) == 0
    assert figures["filtered_groups"] == uniform


def test_unknown_grpo_key_is_a_recipe_error(tmp_path, tiny_policy, items, sandbox, small_recipe):
    from r1ci_core.config import RecipeError

    with pytest.raises(RecipeError, match="unknown keys"):
        grpo.train_grpo(small_recipe.with_overrides({"grpo.not_a_field": 1}), items[:3], str(tiny_policy),
                        tmp_path / "out", tmp_path / "work", sandbox)


def test_numbers_yaml_reads_as_strings_are_taken_or_refused(tmp_path):
    """YAML 1.1 reads `5e-4` as a string: a float field takes it as the number; a non-number is a RecipeError."""
    from trl import GRPOConfig

    from r1ci_core.config import RecipeError
    from r1ci_core.training import trl_config

    args = trl_config(GRPOConfig, {"learning_rate": "5e-4", "use_cpu": True}, "grpo", tmp_path)
    assert args.learning_rate == 5e-4
    with pytest.raises(RecipeError, match="learning_rate must be a number"):
        trl_config(GRPOConfig, {"learning_rate": "fast", "use_cpu": True}, "grpo", tmp_path)


def test_grpo_resumes_from_its_last_checkpoint(tmp_path, tiny_policy, items, sandbox, small_recipe):
    """A run stopped after checkpoint-1 (checkpoint-2 never written) continues at step 1 with its optimizer."""
    import shutil

    recipe = small_recipe.with_overrides({"grpo.max_steps": 2, "grpo.save_strategy": "steps", "grpo.save_steps": 1})
    first = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert first["steps"] == 2 and first["resumed_from_step"] == 0
    assert (tmp_path / "work" / "checkpoint-1" / "optimizer.pt").is_file()
    shutil.rmtree(tmp_path / "work" / "checkpoint-2")  # as if killed between the two saves
    again = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert again["resumed_from_step"] == 1 and again["steps"] == 2
    assert again["n_rollouts"] == 4  # only the remaining step was rolled out


def test_grpo_killed_after_its_last_step_resumes_without_training_more(tmp_path, tiny_policy, items, sandbox,
                                                                       small_recipe):
    """Killed after the last checkpoint but before the final save: the re-run loads checkpoint-N (N = max_steps)
    and trains no step more (the trainer alone would run step N+1 when an epoch is not done)."""
    import shutil

    from safetensors.torch import load_file

    recipe = small_recipe.with_overrides({"grpo.max_steps": 4, "grpo.save_strategy": "steps", "grpo.save_steps": 1,
                                          "grpo.per_device_train_batch_size": 2, "grpo.num_generations": 2,
                                          "grpo.gradient_accumulation_steps": 1})  # 3 prompts: 3 steps an epoch
    first = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert first["steps"] == 4
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    shutil.rmtree(tmp_path / "out")  # as if killed before the final save
    again = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert again["steps"] == 4 and again["resumed_from_step"] == 4 and again["n_rollouts"] == 0
    assert not (tmp_path / "work" / "checkpoint-5").exists()
    reloaded = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(bool((weights[k] == reloaded[k]).all()) for k in weights)
