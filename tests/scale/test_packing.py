"""Packed / padding-free SFT: TRL keeps the interpreter mask, attention stays inside each packed sample
(transformers' masked sdpa/eager and r1ci's `sdpa_varlen` alike), and the loss and gradients equal the
padded batch's."""

from __future__ import annotations

import pytest
import torch

from r1ci_core.chat import EXEC_PREFIX
from r1ci_core.config import RecipeError
from r1ci_core.launch import VARLEN, accelerate_config_path, register_varlen_attention, with_varlen
from r1ci_core.sft import sft_rows


@pytest.fixture(scope="module")
def rows(trajectories, tokenizer):
    return sft_rows(trajectories, tokenizer)


@pytest.fixture(scope="module")
def packed_trainer(base_model, tokenizer, trajectories, rows, tmp_path_factory):
    """TRL's SFTTrainer as `sft.train_sft` builds it, with `sft.packing: true` (rows of twice the longest sample)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from r1ci_core.models import load_model
    from r1ci_core.training import trl_config

    max_length = 2 * max(len(r["input_ids"]) for r in rows)
    args = trl_config(SFTConfig, {"packing": True, "max_length": max_length, "per_device_train_batch_size": 4},
                      "sft", tmp_path_factory.mktemp("packed"), report_to="none", use_cpu=True, bf16=False)
    model = load_model(base_model)
    dataset = Dataset.from_list(sft_rows(trajectories, tokenizer))
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def _expected_labels(row: dict) -> list[int]:
    return [t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True)]


def _segments(ids: list[int], lengths: list[int]):
    start = 0
    for n in lengths:
        yield start, start + n
        start += n


def test_packing_keeps_the_interpreter_mask(packed_trainer, rows, tokenizer) -> None:
    by_ids = {tuple(r["input_ids"]): r for r in rows}
    ds = packed_trainer.train_dataset
    assert len(ds) < len(rows), "several conversations share a packed row"
    seen = 0
    for packed in ds:
        assert sum(packed["seq_lengths"]) == len(packed["input_ids"]) <= packed_trainer.args.max_length
        for start, end in _segments(packed["input_ids"], packed["seq_lengths"]):
            ids, labels = packed["input_ids"][start:end], packed["labels"][start:end]
            row = by_ids[tuple(ids)]  # each packed sample is one whole conversation
            assert labels == _expected_labels(row)
            trained = tokenizer.decode([t for t in labels if t != -100])
            everything = tokenizer.decode(ids)
            if EXEC_PREFIX in everything:
                assert EXEC_PREFIX not in trained  # interpreter turns carry no loss
            assert "<<<" in trained  # the assistant's answer does
            seen += 1
    assert seen == len(rows)


def test_padding_free_batch_boundaries(packed_trainer) -> None:
    ds = packed_trainer.train_dataset
    examples = [ds[i] for i in range(min(2, len(ds)))]
    batch = packed_trainer.data_collator(examples)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    lengths = [n for ex in examples for n in ex["seq_lengths"]]
    starts = [s for s, _ in _segments([], lengths)]
    assert batch["cu_seq_lens_q"].tolist() == [*starts, sum(lengths)]
    labels = [t for ex in examples for t in ex["labels"]]
    for s, e in _segments([], lengths):
        assert batch["position_ids"][0, s:e].tolist() == list(range(e - s))
        # the first token of a sample is never the target of the previous sample's last token
        assert batch["labels"][0, s].item() == -100
        assert batch["labels"][0, s + 1:e].tolist() == labels[s + 1:e]


@pytest.mark.parametrize("attn", ["sdpa", "eager", VARLEN])
def test_packed_logits_equal_each_sample_alone(attn, base_model, rows) -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from r1ci_core.models import load_model

    register_varlen_attention()
    model = load_model(base_model, attn_implementation=attn).eval()
    examples = [{"input_ids": r["input_ids"], "labels": _expected_labels(r)} for r in rows[:5]]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    with torch.no_grad():
        # use_cache=False as in TRL's SFT loss (with a cache transformers would not look for packed rows)
        packed = model(**batch, use_cache=False).logits[0]
        start = 0
        for ex in examples:
            n = len(ex["input_ids"])
            alone = model(input_ids=torch.tensor([ex["input_ids"]]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[start:start + n], alone, atol=2e-5, rtol=1e-4)
            start += n
        # control: the same row read as ONE sequence differs from the second sample on
        flat = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
        n0 = len(examples[0]["input_ids"])
        assert not torch.allclose(flat[n0:], packed[n0:], atol=1e-3)


def test_varlen_loss_and_gradients_equal_the_padded_batch(base_model, rows) -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from r1ci_core.models import load_model

    register_varlen_attention()
    examples = [{"input_ids": r["input_ids"], "labels": _expected_labels(r)} for r in rows[:6]]
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    assert padded["input_ids"].numel() > flat["input_ids"].numel()
    results = {}
    for name, attn, batch in (("padded", "sdpa", padded), ("masked", "sdpa", flat), ("varlen", VARLEN, flat)):
        model = load_model(base_model, attn_implementation=attn)
        model.train()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        results[name] = (loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    ref_loss, ref_grads = results["padded"]
    for name in ("masked", "varlen"):
        loss, grads = results[name]
        torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
        for key, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[key], atol=1e-5, rtol=1e-3, msg=f"{name}: {key}")


def test_varlen_generates_like_sdpa(base_model, tokenizer, trajectories) -> None:
    """Outside padding-free training (left-padded generation with a cache) sdpa_varlen is plain sdpa."""
    from r1ci_core.models import load_model

    register_varlen_attention()
    prompts = [tokenizer.apply_chat_template(t.messages[:2], add_generation_prompt=True, tokenize=False) for t in trajectories[:3]]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    assert (batch["attention_mask"] == 0).any()  # really left-padded
    outs = []
    for attn in ("sdpa", VARLEN):
        model = load_model(base_model, attn_implementation=attn).eval()
        outs.append(model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id))
    assert torch.equal(outs[0], outs[1])


def test_launch_keys_are_typed_fields_and_varlen_is_picked(recipe) -> None:
    assert with_varlen(recipe) is recipe and recipe.model.attn_implementation is None
    assert (recipe.sft.num_processes, recipe.sft.accelerate_config, recipe.sft.varlen_attention) == (1, "ddp", True)

    packed = recipe.with_overrides({"sft.packing": True, "sft.num_processes": 2, "sft.accelerate_config": "ddp"})
    assert (packed.sft.num_processes, packed.sft.accelerate_config) == (2, "ddp")
    assert "num_processes" not in packed.sft.trl and "accelerate_config" not in packed.sft.trl and packed.sft.trl["packing"]
    assert with_varlen(packed).model.attn_implementation == VARLEN

    off = packed.with_overrides({"sft.varlen_attention": False})
    assert with_varlen(off).model.attn_implementation is None
    flash = packed.with_overrides({"model.attn_implementation": "flash_attention_2"})
    assert with_varlen(flash).model.attn_implementation == "flash_attention_2"

    with pytest.raises(RecipeError, match="num_processes"):
        recipe.with_overrides({"sft.num_processes": 0})
    with pytest.raises(RecipeError, match="unknown config 'nope'"):
        accelerate_config_path(recipe.with_overrides({"sft.accelerate_config": "nope"}).sft.accelerate_config)
