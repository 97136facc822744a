"""vLLM (GPU): token-in/token-out generation; install with ``pip install 'r1ci[vllm]'``.

Two engines behind one backend:

* ``llm=`` a ``vllm.LLM`` (offline, in-process): the one this backend builds from ``model_path=`` for
  evaluation and model teachers, or TRL's colocated engine (``GRPOTrainer.vllm_generation.llm``);
* ``client=`` a TRL ``VLLMClient`` of a ``trl vllm-serve`` server (``GRPOTrainer.vllm_generation.vllm_client``).

In GRPO both are TRL's: TRL pushes the policy's weights into them before each step's rollouts.

vLLM cannot express "the closing fence of a python block" as a stop string, so requests stop at
``"```\\n"`` (never matched by the opening ```` ```python````) or EOS, and the returned ids are then cut
right after the token that closes the first block or the first ``<<<answer>>>`` outside code. With
``logprobs=True`` each turn also carries the sampled tokens' log-probabilities (GRPO's importance-sampling
correction). A request whose conversation already fills the engine's ``max_model_len`` ends with
``finish="length"`` instead of failing in vLLM.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Backend, GenRequest, GenResult, SamplingParams, cut_token_turn

FENCE_STOP = "```\n"
SERVER_CONCURRENCY = 64  # requests in flight to a server (TRL's VLLMClient keeps as many connections)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ImportError("the vllm rollout backend needs vLLM (GPU): pip install 'r1ci[vllm]', "
                          "or set rollout.backend: transformers") from None
    return vllm


def _engine_max_len(llm: Any) -> int | None:
    """`max_model_len` of an offline engine (where TRL reads it too), or None."""
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except (AttributeError, TypeError, ValueError):
        return None


class VLLMBackend(Backend):
    name = "vllm"
    token_level = True

    def __init__(self, model_path: str | None = None, *, llm: Any = None, client: Any = None, tokenizer: Any = None,
                 logprobs: bool = False, max_model_len: int | None = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.85, **engine_kwargs: Any):
        if llm is not None and client is not None:
            raise ValueError("the vllm backend takes an offline engine (llm=) or a server client (client=), not both")
        self.client = client
        self.vllm = None if client is not None else _import_vllm()
        if llm is None and client is None:
            if model_path is None:
                raise ValueError("the vllm backend needs model_path= (or a built llm= or a server client=)")
            llm = self.vllm.LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                **engine_kwargs)
        if tokenizer is None:
            if model_path is None and llm is None:
                raise ValueError("the vllm backend with a server client= needs the policy's tokenizer=")
            from ...models import load_tokenizer

            tokenizer = load_tokenizer(model_path) if model_path else llm.get_tokenizer()
        self.llm = llm
        self.tokenizer = tokenizer
        self.logprobs = logprobs
        self.max_model_len = max_model_len if max_model_len is not None else (
            _engine_max_len(llm) if llm is not None else None)
        self._model_name = str(model_path or getattr(client, "model", None) or "vllm")
        self.eos_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None}
        self._pieces: dict[int, str] = {}

    def _piece(self, token_id: int) -> str:
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

    def _cut(self, ids: list[int], req: GenRequest, finish: str | None, logprobs: list[float | None] | None) -> GenResult:
        return cut_token_turn(ids, req, piece=self._piece, eos_ids=self.eos_ids, engine_finish=finish,
                              decode=lambda x: self.tokenizer.decode(x, skip_special_tokens=False),
                              logprobs=logprobs if self.logprobs else None)

    def _budget(self, prompt: list[int], req: GenRequest) -> int:
        """New tokens the request may have: its own budget, within the engine's context length."""
        budget = max(1, req.max_new_tokens)
        if self.max_model_len is not None:
            budget = min(budget, self.max_model_len - len(prompt))
        return budget

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        if not requests:
            return []
        prompts = [list(r.prompt_ids) if r.prompt_ids is not None else self._prompt_ids(r.messages) for r in requests]
        budgets = [self._budget(p, r) for p, r in zip(prompts, requests, strict=True)]
        todo = [i for i, b in enumerate(budgets) if b > 0]
        generate = self._generate_server if self.client is not None else self._generate_offline
        turns = generate([prompts[i] for i in todo], [requests[i] for i in todo], [budgets[i] for i in todo],
                         sampling, todo)
        results: list[GenResult | None] = [None] * len(requests)
        for i, (ids, finish, lps) in zip(todo, turns, strict=True):
            if len(ids) >= budgets[i]:  # the budget may be the context's remainder, below the request's own
                finish = "length"
            results[i] = self._cut(ids, requests[i], finish, lps)
        # no room left in the engine's context: the turn ends at once, as if its budget were spent
        return [r if r is not None else self._cut([], req, "length", None) for r, req in zip(results, requests,
                                                                                           strict=True)]

    @staticmethod
    def _stops(req: GenRequest) -> list[str]:
        return ([FENCE_STOP] if req.stop_on_turn else []) + list(req.stop)

    def _generate_offline(self, prompts: list[list[int]], requests: list[GenRequest], budgets: list[int],
                          sampling: SamplingParams, index: list[int]) -> list[tuple[list[int], str | None, list]]:
        params = [self.vllm.SamplingParams(
            max_tokens=b, temperature=sampling.temperature, top_p=sampling.top_p,
            seed=None if sampling.greedy else sampling.seed + i, stop=self._stops(r) or None,
            include_stop_str_in_output=True, skip_special_tokens=False, logprobs=0 if self.logprobs else None,
        ) for r, b, i in zip(requests, budgets, index, strict=True)]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        turns = []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = None
            if self.logprobs and c.logprobs is not None:  # one {token id: Logprob} per position
                lps = [pos[t].logprob if pos and t in pos else None for t, pos in zip(ids, c.logprobs, strict=True)]
            turns.append((ids, c.finish_reason, lps))
        return turns

    def _generate_server(self, prompts: list[list[int]], requests: list[GenRequest], budgets: list[int],
                         sampling: SamplingParams, index: list[int]) -> list[tuple[list[int], str | None, list]]:
        """One request per conversation (each its own seed), all in flight at once; the server batches them."""

        def one(k: int) -> tuple[list[int], str | None, list | None]:
            extra: dict[str, Any] = {"include_stop_str_in_output": True, "skip_special_tokens": False}
            if self._stops(requests[k]):
                extra["stop"] = self._stops(requests[k])
            if not sampling.greedy:
                extra["seed"] = sampling.seed + index[k]
            out = self.client.generate(prompts=[prompts[k]], n=1, temperature=sampling.temperature,
                                       top_p=sampling.top_p, max_tokens=budgets[k],
                                       logprobs=0 if self.logprobs else None, generation_kwargs=extra)
            ids = list(out["completion_ids"][0])
            lps = None
            if self.logprobs and out.get("logprobs") is not None:  # per position: values and their token ids
                values, tokens = out["logprobs"][0], out["logprob_token_ids"][0]
                lps = [v[ts.index(t)] if t in ts else None for t, v, ts in zip(ids, values, tokens, strict=True)]
            return ids, None, lps

        with ThreadPoolExecutor(min(SERVER_CONCURRENCY, max(1, len(prompts)))) as pool:
            return list(pool.map(one, range(len(prompts))))

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])
