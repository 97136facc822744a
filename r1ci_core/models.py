"""Build the embedded tiny Qwen2 model and load any checkpoint (tiny or Qwen2.5) the same way."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .chat import CHAT_TEMPLATE
from .config import ModelConfig, TinyModelConfig
from .io import atomic_dir

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class ModelLoadError(RuntimeError):
    """A checkpoint that cannot be loaded; the message says why and what to do."""


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE trained on `texts` with Qwen2's own normaliser and pre-tokeniser.

    Returned as a `Qwen2Tokenizer`, so saving and reloading with `AutoTokenizer` gives the same ids.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer

    reference = Qwen2Tokenizer()  # carries Qwen2's exact normaliser / pre-tokeniser / decoder
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = reference.backend_tokenizer.pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def build_tiny_model(out_dir: Path, texts: Iterable[str], cfg: TinyModelConfig, seed: int = 0) -> Path:
    """Train the tokenizer on `texts`, initialise a small `Qwen2ForCausalLM`, save both to `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tiny_tokenizer(texts, cfg.vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("built tiny model: %.2fM parameters, vocab %d -> %s", model.num_parameters() / 1e6, len(tokenizer), out_dir)
    return out_dir


def resolve_model_path(cfg: ModelConfig, tiny_dir: Path) -> str:
    """The path or hub id to load for the base model of a recipe."""
    return str(tiny_dir) if cfg.name_or_path == "tiny" else cfg.name_or_path


def load_tokenizer(path: str, local_files_only: bool = True) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load a tokenizer from {path!r}: {str(err).splitlines()[0]} "
            "(give an existing checkpoint folder, or a hub id already in the local cache)"
        ) from None
    if not tokenizer.chat_template:
        raise ModelLoadError(f"the tokenizer at {path!r} has no chat template: add one to tokenizer_config.json")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32", local_files_only: bool = True, device: str | None = None,
               attn_implementation: str | None = None) -> Any:
    """Load a causal LM checkpoint (tiny or Qwen2.5) with `from_pretrained`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load a model from {path!r}: {str(err).splitlines()[0]} "
            "(set model.name_or_path in the recipe to a checkpoint folder or a cached hub id)"
        ) from None
    if config.model_type not in ("qwen2", "qwen3", "llama"):
        raise ModelLoadError(
            f"checkpoint {path!r} is a {config.model_type!r} model; r1ci recipes expect a Qwen2-family causal LM"
        )
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": local_files_only}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device:
        model.to(device)
    return model


def copy_checkpoint(src: Path, dst: Path) -> None:
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
