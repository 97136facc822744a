"""SFT: what carries the loss (decoded), the checkpoint folder, the tiny tokenizer and model, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from r1ci_core.chat import EXEC_PREFIX
from r1ci_core.config import TinyModelConfig, load_recipe
from r1ci_core.models import build_tiny_model, load_model, load_tokenizer
from r1ci_core.rollout.tiny import sample_items
from r1ci_core.tasks import registry
from r1ci_core.teachers import reference_trajectories

SHAPE = TinyModelConfig(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=128)
FAMILIES = ("rg_lcm", "rg_chain_sum", "bbh_boolean_expressions")


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    """A tiny base model and teacher trajectories (plain and recovering from a failed first run)."""
    from r1ci_core.sandbox import Sandbox

    root = tmp_path_factory.mktemp("sft")
    items = sample_items(6, FAMILIES)
    fams = registry()
    with Sandbox(timeout_s=5.0) as sb:
        plain = reference_trajectories(items[:4], fams, sb, recovery_share=0.0, text_only_share=0.0)
        recovering = reference_trajectories(items[4:], fams, sb, recovery_share=1.0, text_only_share=0.0)
    texts = [it.question for it in items] + [fams[it.family].reference_solution(it) for it in items]
    base = build_tiny_model(root / "base", texts, SHAPE, seed=0)
    return root, base, plain + recovering


def _loss_spans(tokenizer, input_ids, labels) -> list[str]:
    """The decoded runs of consecutive loss-carrying tokens."""
    spans, cur = [], []
    for tok, lab in zip(input_ids, labels, strict=True):
        if lab != -100:
            cur.append(tok)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return [tokenizer.decode(s, skip_special_tokens=False) for s in spans]


def test_sft_loss_is_on_assistant_text_and_code_not_on_execution_output(sft_data, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from r1ci_core.sft import sft_rows

    _, base, trajs = sft_data
    tok = load_tokenizer(str(base))
    rows = sft_rows(trajs, tok)
    args = SFTConfig(output_dir=str(tmp_path / "w"), max_steps=1, report_to="none", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, save_strategy="no", per_device_train_batch_size=2)
    trainer = SFTTrainer(model=load_model(str(base)), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    prepared = trainer.train_dataset
    assert len(prepared) == len(trajs)
    by_ids = {tuple(r["input_ids"]): r["labels"] for r in prepared}
    n_recovery = 0
    for traj, row in zip(trajs, rows, strict=True):
        labels = by_ids[tuple(row["input_ids"])]  # TRL built labels from our assistant mask
        spans = _loss_spans(tok, row["input_ids"], labels)
        assistant = [m["content"] + "<|im_end|>" for m in traj.messages if m["role"] == "assistant"]
        assert spans == assistant  # exactly the assistant turns: reasoning, code, final answer
        assert any("```python" in s for s in spans)
        trained = "".join(spans)
        assert EXEC_PREFIX not in trained
        for m in traj.messages:
            if m["role"] == "tool":
                output = m["content"][len(EXEC_PREFIX):].strip()
                if "Traceback" in output or "Error" in output:
                    n_recovery += 1
                    assert output not in trained  # the failed run's error is context, never a target
        for m in traj.messages:
            if m["role"] in ("system", "user"):
                assert m["content"] not in trained
    assert n_recovery >= 1
    trainer.train()  # and it trains


def test_sft_checkpoint_folder_loads_with_from_pretrained(sft_data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from r1ci_core.sft import train_sft

    _, base, trajs = sft_data
    recipe = load_recipe("tiny", {"sft": {"max_steps": 2, "per_device_train_batch_size": 4, "save_steps": 1,
                                          "learning_rate": 1e-3, "logging_steps": 1, "disable_tqdm": True}})
    figures = train_sft(recipe, trajs, str(base), tmp_path / "ckpt", tmp_path / "work")
    assert figures["steps"] == 2 and figures["resumed_from_step"] == 0 and len(figures["loss_curve"]) == 2
    ckpt = tmp_path / "ckpt"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert tok.chat_template and "generation" in tok.chat_template
    assert GenerationConfig.from_pretrained(ckpt).eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.config.model_type == "qwen2"
    # same inputs again: resumes from the last checkpoint (step 2) and trains nothing more
    again = train_sft(recipe, trajs, str(base), tmp_path / "ckpt", tmp_path / "work")
    assert again["resumed_from_step"] == 2 and again["steps"] == 2
    # other inputs: the stale checkpoints are dropped, training starts over
    other = recipe.with_overrides({"sft.learning_rate": 5e-4})
    fresh = train_sft(other, trajs, str(base), tmp_path / "ckpt", tmp_path / "work")
    assert fresh["resumed_from_step"] == 0 and fresh["steps"] == 2


def test_tiny_tokenizer_keeps_numbers_whole_and_format_strings_as_one_token(sft_data):
    _, base, _ = sft_data
    tok = load_tokenizer(str(base))
    text = "Code Execution Results:\n<<<-258>>>"
    pieces = [tok.decode([i]) for i in tok(text, add_special_tokens=False)["input_ids"]]
    assert pieces[0] == EXEC_PREFIX and "<<<" in pieces and ">>>" in pieces
    assert [tok.decode([i]) for i in tok("14862243", add_special_tokens=False)["input_ids"]] == ["148", "622", "43"]
    assert [tok.decode([i]) for i in tok("815 + 375", add_special_tokens=False)["input_ids"]] == ["815", " +", " ", "375"]
    from r1ci_core.chat import SYSTEM_PROMPT

    assert len(tok(SYSTEM_PROMPT, add_special_tokens=False)["input_ids"]) == 1
    # reloading gives the same ids
    again = load_tokenizer(str(base))
    s = "What is 815 + 375? <|im_start|>user\nThe answer is <<<1190>>>."
    assert again(s)["input_ids"] == tok(s)["input_ids"]


def test_tiny_model_copies_from_its_context_before_any_training(sft_data):
    """The induction circuit: a repeated random sequence is continued by copying, at initialisation."""
    import torch

    from r1ci_core.models import wire_induction_heads

    torch.manual_seed(0)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=1000, hidden_size=192, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=256, rope_theta=1e6, tie_word_embeddings=True)
    plain, wired = Qwen2ForCausalLM(cfg).eval(), Qwen2ForCausalLM(cfg).eval()
    wire_induction_heads(wired, seed=0)
    seq = torch.randint(10, 1000, (8, 12))
    x = torch.cat([seq, torch.randint(10, 1000, (8, 5)), seq], 1)

    def copy_acc(model):
        with torch.no_grad():
            pred = model(input_ids=x).logits[:, -12:-1].argmax(-1)
        return (pred == x[:, -11:]).float().mean().item()

    assert copy_acc(wired) > 0.9 > 0.2 > copy_acc(plain)


CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import r1ci_core.sft as sft
    from transformers import TrainerCallback
    from r1ci_core.config import load_recipe
    from r1ci_core.trajectory import Trajectory

    spec = json.loads(Path(sys.argv[1]).read_text())

    class Slow(TrainerCallback):  # slow steps down so the parent can kill mid-run
        def on_step_end(self, args, state, control, **kw):
            time.sleep(spec["sleep"])

        def on_train_begin(self, args, state, control, optimizer=None, **kw):
            st = [s.get("step") for s in optimizer.state.values()] if optimizer is not None else []
            Path(spec["probe"]).write_text(json.dumps({"start_step": state.global_step,
                                                       "adam_steps": [float(s) for s in st if s is not None]}))

    real = sft.mlflow_callback
    sft.mlflow_callback = lambda: Slow()
    recipe = load_recipe("tiny", {"sft": spec["sft"]})
    trajs = [Trajectory.from_row(r) for r in json.loads(Path(spec["trajs"]).read_text())]
    figures = sft.train_sft(recipe, trajs, spec["base"], Path(spec["out"]), Path(spec["work"]))
    Path(spec["figures"]).write_text(json.dumps({k: v for k, v in figures.items() if not isinstance(v, list)}))
""")


def test_sft_killed_with_sigkill_resumes_from_its_checkpoint(sft_data, tmp_path):
    _, base, trajs = sft_data
    spec = {"sft": {"max_steps": 12, "per_device_train_batch_size": 2, "save_steps": 3, "save_total_limit": 5,
                    "learning_rate": 1e-3, "logging_steps": 1, "disable_tqdm": True},
            "trajs": str(tmp_path / "trajs.json"), "base": str(base), "out": str(tmp_path / "ckpt"),
            "work": str(tmp_path / "work"), "figures": str(tmp_path / "figures.json"),
            "probe": str(tmp_path / "probe.json"), "sleep": 0.5}
    (tmp_path / "trajs.json").write_text(json.dumps([t.to_row() for t in trajs]))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "R1CI_TORCH_THREADS": "1"}
    cmd = [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "spec.json")]
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    saved = tmp_path / "work" / "checkpoint-6" / "trainer_state.json"
    deadline = time.time() + 240
    try:
        while not saved.is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint-6 within 240 s"
            time.sleep(0.1)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "figures.json").exists()
    assert json.loads((tmp_path / "probe.json").read_text()) == {"start_step": 0, "adam_steps": []}
    killed_at = max(int(p.name.split("-")[1]) for p in (tmp_path / "work").glob("checkpoint-*")
                    if (p / "trainer_state.json").is_file())
    assert 6 <= killed_at < 12
    assert (tmp_path / "work" / f"checkpoint-{killed_at}" / "optimizer.pt").is_file()

    spec["sleep"] = 0.0
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(cmd, env=env, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["resumed_from_step"] == killed_at and figures["steps"] == 12
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert probe["start_step"] == killed_at  # the global step continues
    assert probe["adam_steps"] and set(probe["adam_steps"]) == {float(killed_at)}  # optimizer state loaded
    state = json.loads((tmp_path / "work" / "checkpoint-12" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == list(range(1, 13))
