"""The R1-CI conversation format: prompts, the chat template, and tokenisation with a loss mask."""

from __future__ import annotations

from typing import Any

PROMPT_VERSION = "r1ci-v1"

SYSTEM_PROMPT = (
    "Solve the task. You may think in text or write Python code in a ```python block; "
    "the code is run and its output comes back as Code Execution Results. "
    "End with the final answer as <<<answer>>>."
)
TEXT_ONLY_SUFFIX = " Do not write code: answer in text only."
CODE_FIRST_SUFFIX = " Write Python code first to compute the answer."

EXEC_PREFIX = "Code Execution Results:"

# Qwen-style ChatML with {% generation %} markers so TRL's assistant_only_loss also works.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def system_prompt(mode: str = "autonomous") -> str:
    """The R1-CI system prompt for an evaluation/rollout mode."""
    suffix = {"autonomous": "", "text_only": TEXT_ONLY_SUFFIX, "code_first": CODE_FIRST_SUFFIX}
    if mode not in suffix:
        raise ValueError(f"unknown mode {mode!r}; choose one of {sorted(suffix)}")
    return SYSTEM_PROMPT + suffix[mode]


def prompt_messages(question: str, mode: str = "autonomous") -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt(mode)}, {"role": "user", "content": question}]


def exec_message(output: str) -> dict[str, str]:
    """The interpreter turn that follows an executed code block."""
    return {"role": "tool", "content": f"{EXEC_PREFIX}\n{output}"}


def _render_ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation and a mask, 1 on assistant-written tokens (the only ones trained).

    Works with any chat template (the tiny one or Qwen2.5's own) by rendering prefixes: the tokens an
    assistant turn adds after the generation prompt are assistant tokens; everything else (system, user,
    interpreter turns, template tokens) is 0.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template: save one with the checkpoint (tokenizer.chat_template)")
    ids: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            before = _render_ids(tokenizer, messages[:i], add_generation_prompt=True)
        else:
            before = None
        full = _render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False)
        start = len(ids)
        if before is not None:
            _extend(ids, mask, before, 0, start)
            start = len(ids)
            new = full[start:]
            # The turn separator after <|im_end|> is template, not content.
            n_trail = _trailing_template_tokens(tokenizer, new)
            mask.extend([1] * (len(new) - n_trail) + [0] * n_trail)
            ids.extend(new)
        else:
            _extend(ids, mask, full, 0, start)
    return ids, mask


def _extend(ids: list[int], mask: list[int], full: list[int], value: int, start: int) -> None:
    if full[:start] != ids[:start]:
        raise ValueError("the chat template does not render conversations prefix-consistently")
    new = full[start:]
    ids.extend(new)
    mask.extend([value] * len(new))


def _trailing_template_tokens(tokenizer: Any, new: list[int]) -> int:
    """How many tokens after the turn's end-of-message token (e.g. the newline after <|im_end|>)."""
    end_ids = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id}
    for k in range(len(new) - 1, -1, -1):
        if new[k] in end_ids:
            return len(new) - 1 - k
    return 0
