"""Which prompts and ids GRPO trains on: dynamic sampling, the online family mix, token-in-token-out checks."""

from __future__ import annotations

import random

import mlflow
import pytest

import r1ci_core.grpo as grpo
from r1ci_core import rewards
from r1ci_core.chat import CHAT_TEMPLATE
from r1ci_core.config import load_recipe
from r1ci_core.curriculum import OnlineDifficulty
from r1ci_core.models import load_model, load_tokenizer
from r1ci_core.rollout import get_backend, run_rollouts
from r1ci_core.tito import retokenize_mismatch, retokenize_mismatches, trainer_mismatches


def _capturing(captured: dict):
    """The trainer class, recording what TRL handed each step and what was trained on."""
    real = grpo.make_trainer_class

    def make():
        class Capturing(real()):
            def _generate_and_score_completions(self, inputs):
                captured.setdefault("given", []).append([x["item_id"] for x in inputs])
                out = super()._generate_and_score_completions(inputs)
                captured.setdefault("trained", []).append([t.item_id for t in self.r1ci_rollout_func.last])
                captured.setdefault("scored", []).append(out)
                return out

        return Capturing

    return make


def _metric(run_id: str, name: str) -> list[float]:
    return [m.value for m in mlflow.tracking.MlflowClient().get_metric_history(run_id, name)]


def test_dynamic_sampling_replaces_uniform_groups_with_fresh_prompts(tmp_path, monkeypatch, tiny_policy, items,
                                                                    sandbox, small_recipe):
    """A scripted reward makes the first group rolled out uniform: it is dropped, a prompt not yet in the batch is
    rolled out in its place, TRL trains on that one, and the counts reach the log history and MLflow."""
    calls: list[list[str]] = []

    def scripted(completions, item_id, **kwargs):
        calls.append(list(item_id))
        uniform = calls[0][0]  # the first prompt rolled out gets the same reward for every sample
        return [1.0 if i == uniform else float(k % 2) for k, i in enumerate(item_id)]

    monkeypatch.setitem(rewards.REWARDS, "scripted", lambda limits: scripted)
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _capturing(captured))
    recipe = small_recipe.with_overrides({"grpo.rewards": {"scripted": 1.0},
                                          "grpo.dynamic_sampling": {"enabled": True, "max_rounds": 2},
                                          "curriculum.online.enabled": True})
    with mlflow.start_run() as run:
        figures = grpo.train_grpo(recipe, items, str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)

    first = calls[0]  # the step's first roll-out: 2 prompts x 2 samples, drawn by the online mix
    assert len(first) == 4 and first[0] == first[1] != first[2] == first[3]
    trained = captured["trained"][0]
    assert first[0] not in trained, "the uniform group must be dropped"
    assert first[2] in trained, "the group with a learning signal stays"
    fresh = [i for i in trained if i not in first]
    assert len(fresh) == 2 and fresh[0] == fresh[1], "one fresh prompt (two samples) replaces the dropped group"
    assert figures["n_rollouts"] == 4 + 2 and figures["dynamic_sampling_dropped"] == 1
    assert figures["dynamic_sampling_rounds"] == 1 and figures["filtered_groups"] == 0
    scored = captured["scored"][0]
    assert int((scored["completion_mask"] * scored["tool_mask"]).sum()) > 0  # nothing masked: both groups train
    assert _metric(run.info.run_id, "dynamic_sampling.dropped_groups") == [1.0]
    assert _metric(run.info.run_id, "dynamic_sampling.rounds") == [1.0]
    assert _metric(run.info.run_id, "dynamic_sampling.masked_groups") == [0.0]
    # the online mix and the token checks are logged per step too
    family = items[0].family
    assert _metric(run.info.run_id, f"online_mix.{family}") == [1.0]
    assert len(_metric(run.info.run_id, f"online_pass_rate.{family}")) == 1
    assert _metric(run.info.run_id, "tito.trainer_mismatches") == [0.0]
    assert len(_metric(run.info.run_id, "tito.retokenize_mismatches")) == 1


def test_dynamic_sampling_stops_after_max_rounds_and_masks_what_stays_uniform(tmp_path, monkeypatch, tiny_policy,
                                                                             items, sandbox, small_recipe):
    monkeypatch.setitem(rewards.REWARDS, "constant", lambda limits: lambda completions, **kw: [1.0] * len(completions))
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _capturing(captured))
    recipe = small_recipe.with_overrides({"grpo.rewards": {"constant": 1.0},
                                          "grpo.dynamic_sampling": {"enabled": True, "max_rounds": 2}})
    figures = grpo.train_grpo(recipe, items, str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert figures["n_rollouts"] == 4 * 3  # the step's batch, then 2 extra rounds of 2 prompts, no more
    assert figures["dynamic_sampling_rounds"] == 2 and figures["dynamic_sampling_dropped"] == 4
    assert figures["filtered_groups"] == 2  # the batch is filled with uniform groups that carry no loss
    scored = captured["scored"][0]
    assert int((scored["completion_mask"] * scored["tool_mask"]).sum()) == 0


def test_dynamic_sampling_key_is_checked(tmp_path, tiny_policy, items, sandbox, small_recipe):
    from r1ci_core.config import RecipeError

    with pytest.raises(RecipeError, match=r"unknown key 'grpo\.dynamic_sampling\.max_round' \(did you mean 'max_rounds'\?"):
        grpo.train_grpo(small_recipe.with_overrides({"grpo.dynamic_sampling": {"max_round": 2}}), items,
                        str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)


# A ChatML variant that renders conversations prefix-consistently as TEXT (the engine accepts it) but not as
# TOKENS: an assistant turn ends with "\nassist" and a following interpreter turn starts with "ant", which
# the tokenizer reads as one "\nassistant" when the conversation is tokenised in one go.
NOT_PREFIX_STABLE = (CHAT_TEMPLATE.replace("{{ '\\n' }}", "{{ '\\nassist' }}")
                     .replace("'<|im_start|>user\\n' + message", "'ant<|im_start|>user\\n' + message"))


def test_tito_check_catches_a_template_that_is_not_prefix_stable(tiny_policy, items, sandbox):
    assert NOT_PREFIX_STABLE.count("assist'") == 1 and NOT_PREFIX_STABLE.count("'ant<") == 1
    tok = load_tokenizer(str(tiny_policy))
    model = load_model(str(tiny_policy), "float32", True)
    limits = load_recipe("tiny").rollout.model_copy(update={"max_new_tokens": 200, "max_turns": 3})
    found = {}
    for name, template in (("normal", CHAT_TEMPLATE), ("not_prefix_stable", NOT_PREFIX_STABLE)):
        tok.chat_template = template
        trajs = run_rollouts(get_backend("transformers", model=model, tokenizer=tok), items, limits=limits,
                             sandbox=sandbox, progress=False)
        assert any(t.n_code_calls for t in trajs), "the policy must write code (an interpreter turn follows)"
        found[name] = (trajs, retokenize_mismatches(trajs, tok))
        for t in trajs:  # the policy's own tokens are in the record exactly as sampled either way
            assert len(t.token_ids) == len(t.mask)
        for t in trajs:  # a flag off the template's boundaries: the policy's own sampled ids are not the ids the
            pos = retokenize_mismatch(t, tok)  # tokenizer gives their text (a turn cut at the token limit can be such)
            if name == "not_prefix_stable" and t.n_code_calls > 0:  # flagged at its interpreter turn's boundary
                assert pos is not None
                assert "assist" in tok.decode(t.token_ids[pos - 2:pos + 2], skip_special_tokens=False)
            else:
                assert pos is None or (t.mask[pos] == 1 and t.finish_reason == "max_tokens")
    assert found["not_prefix_stable"][1] >= sum(t.n_code_calls > 0 for t in found["not_prefix_stable"][0]) > 0


def test_online_mix_moves_toward_mid_difficulty_families():
    """Toy: a family always solved and one never solved lose weight to a family solved half the time."""
    solve = {"always": 1.0, "never": 0.0, "mid": 0.5}
    candidates = [{"family": f, "id": f"{f}{i}"} for f in solve for i in range(20)]
    online = OnlineDifficulty(list(solve), prior={"always": 0.5, "never": 0.5, "mid": 0.5}, ema=0.3, floor=0.05)
    assert online.weights() == pytest.approx({f: 1 / 3 for f in solve})
    rng = random.Random(0)
    late = dict.fromkeys(solve, 0)
    for step in range(30):
        drawn = online.draw(candidates, 6, rng, family=lambda c: c["family"])
        assert len({c["id"] for c in drawn}) == 6
        for c in drawn:
            fam = c["family"]
            online.update(fam, [float(rng.random() < solve[fam]) for _ in range(4)])
            if step >= 20:
                late[fam] += 1
    w = online.weights()
    assert online.pass_rate["always"] > 0.9 and online.pass_rate["never"] < 0.1
    assert w["mid"] > 3 * w["always"] and w["mid"] > 3 * w["never"]
    assert min(w.values()) > 0  # the floor: no family starves
    assert late["mid"] > late["always"] + late["never"]
    online.update("mid", [None, None])  # infra errors carry no information
    assert online.weights() == w


def test_trainer_check_counts_rows_whose_ids_changed_on_the_way_to_the_loss():
    """TRL's padded batch against what the rollout function sent: equal rows pass; a dropped or changed id fails."""
    import torch

    sent = [([5, 6], [7, 8, 9], [1, 0, 1]), ([4], [3, 2], [1, 1])]
    batch = {"prompt_ids": torch.tensor([[5, 6], [0, 4]]), "prompt_mask": torch.tensor([[1, 1], [0, 1]]),
             "completion_ids": torch.tensor([[7, 8, 9], [3, 2, 0]]),
             "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]), "tool_mask": torch.tensor([[1, 0, 1], [1, 1, 1]])}
    assert trainer_mismatches(batch, sent) == 0
    batch["completion_ids"][1, 1] = 1  # an id rewritten
    assert trainer_mismatches(batch, sent) == 1
    batch["completion_ids"][1, 1] = 2
    batch["prompt_mask"][0, 0] = 0  # the prompt cut short
    assert trainer_mismatches(batch, sent) == 1
    batch["prompt_mask"][0, 0] = 1
    batch["tool_mask"][0, 1] = 1  # an interpreter token given a loss
    assert trainer_mismatches(batch, sent) == 1
