"""vLLM offline engine (GPU): token-in/token-out generation; install with ``pip install 'r1ci[vllm]'``.

vLLM cannot express "the closing fence of a python block" as a stop string, so requests stop at
``"```\\n"`` (never matched by the opening ```` ```python````) or EOS, and the returned ids are then cut
right after the token that closes the first block or the first ``<<<answer>>>`` outside code.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, GenRequest, GenResult, SamplingParams, cut_token_turn

FENCE_STOP = "```\n"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ImportError("the vllm rollout backend needs vLLM (GPU): pip install 'r1ci[vllm]', "
                          "or set rollout.backend: transformers") from None
    return vllm


class VLLMBackend(Backend):
    name = "vllm"
    token_level = True

    def __init__(self, model_path: str | None = None, *, llm: Any = None, tokenizer: Any = None,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.85, **engine_kwargs: Any):
        self.vllm = _import_vllm()
        if llm is None:
            if model_path is None:
                raise ValueError("the vllm backend needs model_path= (or a built llm=)")
            llm = self.vllm.LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                **engine_kwargs)
        if tokenizer is None:
            from ...models import load_tokenizer

            tokenizer = load_tokenizer(model_path) if model_path else llm.get_tokenizer()
        self.llm = llm
        self.tokenizer = tokenizer
        self._model_name = str(model_path or "vllm")
        self.eos_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None}
        self._pieces: dict[int, str] = {}

    def _piece(self, token_id: int) -> str:
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

    def _cut(self, ids: list[int], req: GenRequest, vllm_finish: str | None) -> GenResult:
        return cut_token_turn(ids, req, piece=self._piece, eos_ids=self.eos_ids, engine_finish=vllm_finish,
                              decode=lambda x: self.tokenizer.decode(x, skip_special_tokens=False))

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        if not requests:
            return []
        params = []
        for i, r in enumerate(requests):
            stops = ([FENCE_STOP] if r.stop_on_turn else []) + list(r.stop)
            params.append(self.vllm.SamplingParams(
                max_tokens=max(1, r.max_new_tokens), temperature=sampling.temperature, top_p=sampling.top_p,
                seed=None if sampling.greedy else sampling.seed + i, stop=stops or None,
                include_stop_str_in_output=True, skip_special_tokens=False,
            ))
        prompts = [{"prompt_token_ids": list(r.prompt_ids) if r.prompt_ids is not None
                    else self._prompt_ids(r.messages)} for r in requests]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        return [self._cut(list(o.outputs[0].token_ids), r, o.outputs[0].finish_reason)
                for o, r in zip(outs, requests, strict=True)]

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])
