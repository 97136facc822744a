"""A tiny policy that really writes code blocks: for tests and benchmarks of the rollout engine on CPU.

An untrained tiny model emits garbage; teaching it a few fixed R1-CI conversations (think, a ```python
block, the interpreter's output, then ``<<<answer>>>``) for ~100 steps gives real multi-turn behaviour in
a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..chat import (
    CODE_FIRST_SUFFIX,
    EXEC_PREFIX,
    SYSTEM_PROMPT,
    TEXT_ONLY_SUFFIX,
    exec_message,
    prompt_messages,
)
from ..config import TinyModelConfig
from ..tasks import Item, registry

TINY_SHAPE = TinyModelConfig(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=512)


def sample_items(n: int, families: tuple[str, ...] = ("number_multiply",), seed: int = 0) -> list[Item]:
    """`n` items spread over `families` (round-robin), deterministic for `seed`."""
    reg = registry()
    per = -(-n // len(families))
    pools = [reg[f].generate(per, seed=seed) for f in families]
    out = [pool[i] for i in range(per) for pool in pools if i < len(pool)]
    return out[:n]


REASONING = ("Let me think. The question is: {question} Doing this by hand is slow and error-prone, "
             "so I will write Python code to compute it exactly, then read the result.")


def teaching_conversation(item: Item, output: str, mode: str = "autonomous") -> list[dict[str, str]]:
    """Reason in text (restating the question), write a code block, then answer from its output."""
    family = registry()[item.family]
    code = family.reference_solution(item)
    if not code.endswith("\n"):
        code += "\n"
    question = item.question.splitlines()[0]
    return prompt_messages(item.question, mode) + [
        {"role": "assistant", "content": REASONING.format(question=question) + f"\n```python\n{code}```"},
        exec_message(output),
        {"role": "assistant", "content": f"The code printed the result, so the answer is <<<{item.answer}>>>"},
    ]


def tokenizer_texts(items: list[Item]) -> list[str]:
    reg = registry()
    texts = [SYSTEM_PROMPT, SYSTEM_PROMPT + TEXT_ONLY_SUFFIX, SYSTEM_PROMPT + CODE_FIRST_SUFFIX, EXEC_PREFIX,
             REASONING.format(question="") + "\n```python\nprint(1)\n```",
             "The code printed the result, so the answer is <<<1>>>"]
    for item in items:
        texts += [item.question, reg[item.family].reference_solution(item), f"<<<{item.answer}>>>"]
    return texts


def teach(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], steps: int = 100,
          lr: float = 3e-3, seed: int = 0) -> Any:
    """Teacher-force `conversations` (loss on assistant tokens) with a plain torch loop."""
    import torch

    from ..chat import tokenize_conversation

    torch.manual_seed(seed)
    rows = [tokenize_conversation(tokenizer, c) for c in conversations]
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for b, (ids, mask) in enumerate(rows):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention[b, : len(ids)] = 1
        labels[b, : len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask, strict=True)])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.final_teaching_loss = float(loss.detach())
    return model


def make_tiny_policy(out_dir: Path, items: list[Item], n_teach: int = 3, steps: int = 100,
                     seed: int = 0) -> tuple[Any, Any]:
    """Build the tiny model for `items`, teach it `n_teach` of them, save it to `out_dir`; (model, tokenizer)."""
    from ..models import build_tiny_model, load_model, load_tokenizer
    from ..sandbox import Sandbox

    out_dir = Path(out_dir)
    build_tiny_model(out_dir, tokenizer_texts(items), TINY_SHAPE, seed=seed)
    tokenizer = load_tokenizer(str(out_dir))
    model = load_model(str(out_dir))
    taught = items[:n_teach]
    reg = registry()
    with Sandbox() as sandbox:
        results = sandbox.run_many([reg[i.family].reference_solution(i) for i in taught])
    # taught under both code-running system prompts, so code_first mode writes code as autonomous does
    conversations = [teaching_conversation(i, r.stdout.rstrip("\n"), mode)
                     for mode in ("autonomous", "code_first") for i, r in zip(taught, results, strict=True)]
    teach(model, tokenizer, conversations, steps=steps, seed=seed)
    model.save_pretrained(out_dir)
    return model, tokenizer
