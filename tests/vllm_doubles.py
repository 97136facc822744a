"""Test doubles of vLLM for CPU tests: an offline engine (`LLM`) and a TRL `VLLMClient` of a server.

Both sample for real from their own copy of a tiny Hugging Face model (one request at a time, with a KV
cache), with vLLM's surface: `LLM.generate(prompts, sampling_params)` returning `RequestOutput`-like objects
(token ids including EOS, finish reason, one {token id: Logprob} per position), `VLLMClient.generate(prompts=,
...)` returning TRL's dict of ids and logprobs. Their weights load like vLLM's (`load_weights`,
`update_named_params`), so TRL's own weight sync can push the policy into them; each generate call records
whether the engine's weights equal the policy's at that moment.
"""

from __future__ import annotations

import copy
import importlib.machinery
import types
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch


@dataclass
class SamplingParams:
    """The `vllm.SamplingParams` fields r1ci and TRL set (same names and defaults)."""

    n: int = 1
    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    logprobs: int | None = None


def fake_vllm_module(built: list | None = None) -> types.ModuleType:
    """A stand-in `vllm` module: `SamplingParams`, and `LLM(model=path, ...)` building a `DoubleLLM` of that
    checkpoint (appended to `built` with its kwargs); without `built`, building an engine is refused."""
    mod = types.ModuleType("vllm")
    mod.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    mod.SamplingParams = SamplingParams

    def llm(model: str, **kwargs):
        if built is None:
            raise AssertionError("this test expects no vLLM engine to be built from a path")
        engine = DoubleLLM.from_path(model, max_model_len=kwargs.get("max_model_len"))
        built.append((model, kwargs, engine))
        return engine

    mod.LLM = llm
    return mod


class _Sampler:
    """A copy of the policy that generates like vLLM (and can be loaded with new weights)."""

    def __init__(self, policy: Any, tokenizer: Any, max_model_len: int | None = None, stale: bool = True):
        self.policy = policy  # only to check the sync: generation uses the copy
        self.model = copy.deepcopy(policy).eval()
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.eos_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None}
        self.calls: list[dict[str, Any]] = []  # one per generated sequence
        self.loads = 0  # tensors loaded
        self.discarded = False
        if stale:  # an engine that still holds other weights until the first sync
            with torch.no_grad():
                for p in self.model.parameters():
                    p.add_(0.05 * torch.randn_like(p))

    def load(self, weights) -> int:
        params = dict(self.model.named_parameters())
        n = 0
        with torch.no_grad():
            for name, tensor in weights:
                params[name].copy_(tensor)
                n += 1
        self.loads += n  # tensors loaded (TRL's colocate sync loads them one at a time)
        self.discarded = False
        return n

    def synced(self) -> bool:
        mine = dict(self.model.named_parameters())
        return all(torch.equal(mine[n], p.detach()) for n, p in self.policy.named_parameters())

    def sample(self, prompt: list[int], p: SamplingParams) -> tuple[list[int], str, list[float]]:
        from transformers import DynamicCache

        if self.discarded:
            raise RuntimeError("generate after sleep(level=2) without loading the weights again")
        if self.max_model_len is not None and len(prompt) + (p.max_tokens or 0) > self.max_model_len:
            raise ValueError(f"prompt ({len(prompt)}) + max_tokens ({p.max_tokens}) > max_model_len "
                             f"({self.max_model_len})")
        stops = [p.stop] if isinstance(p.stop, str) else list(p.stop or [])
        gen = torch.Generator().manual_seed(p.seed if p.seed is not None else int(torch.randint(0, 2**31, ())))
        record = {"prompt": list(prompt), "params": p, "synced": self.synced(), "ids": []}
        self.calls.append(record)  # (a server's requests run in threads: fill this record, not calls[-1])
        ids: list[int] = []
        lps: list[float] = []
        text, finish = "", "length"
        cache = DynamicCache(config=self.model.config)
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([prompt]), past_key_values=cache, use_cache=True)
            for _ in range(p.max_tokens or 16):
                logits = out.logits[0, -1].float()
                if p.temperature > 0:
                    logp = torch.log_softmax(logits / p.temperature, -1)  # processed logprobs
                    tok = int(torch.multinomial(logp.exp(), 1, generator=gen))
                else:
                    logp = torch.log_softmax(logits, -1)
                    tok = int(logits.argmax())
                ids.append(tok)
                lps.append(float(logp[tok]))
                if tok in self.eos_ids:
                    finish = "stop"
                    break
                text += self.tokenizer.decode([tok], skip_special_tokens=False)
                if any(s in text for s in stops):
                    finish = "stop"
                    break
                out = self.model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
        record["ids"] = list(ids)
        return ids, finish, lps


class DoubleLLM:
    """`vllm.LLM` as r1ci and TRL use it (colocate): generate, load_weights, prefix cache, sleep/wake."""

    def __init__(self, policy: Any, tokenizer: Any, max_model_len: int | None = None, stale: bool = True):
        self.sampler = _Sampler(policy, tokenizer, max_model_len, stale=stale)
        runner = SimpleNamespace(model=SimpleNamespace(load_weights=self.sampler.load))
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner)),
            model_config=SimpleNamespace(max_model_len=max_model_len))
        self.kv_awake = True
        self.events: list[str] = []

    @classmethod
    def from_path(cls, path: str, max_model_len: int | None = None) -> DoubleLLM:
        """The engine `vllm.LLM(model=path)` builds: the checkpoint's own weights and tokenizer."""
        from r1ci_core.models import load_model, load_tokenizer

        return cls(load_model(path), load_tokenizer(path), max_model_len, stale=False)

    def get_tokenizer(self) -> Any:
        return self.sampler.tokenizer

    def generate(self, prompts, sampling_params, use_tqdm=True):
        if not self.kv_awake:
            raise RuntimeError("generate while the KV cache sleeps")
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        self.events.append("generate")
        outs = []
        for prompt, p in zip(prompts, params, strict=True):
            ids, finish, lps = self.sampler.sample(prompt["prompt_token_ids"], p)
            logprobs = None if p.logprobs is None else [
                {t: SimpleNamespace(logprob=lp, rank=1)} for t, lp in zip(ids, lps, strict=True)]
            outs.append(SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[
                SimpleNamespace(token_ids=ids, finish_reason=finish, logprobs=logprobs)]))
        return outs

    def reset_prefix_cache(self):
        self.events.append("reset_prefix_cache")

    def sleep(self, level: int = 1):
        self.events.append(f"sleep{level}")
        self.kv_awake = False
        if level == 2:
            self.sampler.discarded = True

    def wake_up(self, tags=None):
        self.events.append(f"wake:{','.join(tags or [])}")
        if not tags or "kv_cache" in tags:
            self.kv_awake = True


class DoubleClient:
    """TRL's `VLLMClient` of a `trl vllm-serve` server: generate over token ids, weight updates, server info."""

    def __init__(self, policy: Any, tokenizer: Any):
        self.sampler = _Sampler(policy, tokenizer)
        self.model = "served-policy"
        self.updates: list[list[str]] = []
        self.requests: list[dict[str, Any]] = []

    def get_server_info(self) -> dict:
        return {"model_config": {"logprobs_mode": "processed_logprobs"}}

    def generate(self, prompts, features=None, n=1, repetition_penalty=1.0, temperature=1.0, top_p=1.0, top_k=0,
                 min_p=0.0, max_tokens=16, logprobs=0, structured_outputs_regex=None, generation_kwargs=None):
        extra = dict(generation_kwargs or {})
        self.requests.append({"n_prompts": len(prompts), "max_tokens": max_tokens, **extra})
        p = SamplingParams(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                           seed=extra.get("seed"), stop=extra.get("stop"), logprobs=logprobs,
                           include_stop_str_in_output=extra.get("include_stop_str_in_output", False))
        outs = [self.sampler.sample(list(prompt), p) for prompt in prompts for _ in range(n)]
        return {
            "prompt_ids": [list(prompt) for prompt in prompts],
            "completion_ids": [ids for ids, _, _ in outs],
            "logprobs": None if logprobs is None else [[[lp] for lp in lps] for _, _, lps in outs],
            "logprob_token_ids": None if logprobs is None else [[[t] for t in ids] for ids, _, _ in outs],
        }

    def update_named_params(self, metadata, named_params):
        names = [name for name, _, _ in metadata]
        received = []

        def stream():
            for name, tensor in named_params:
                received.append(name)
                yield name, tensor

        self.sampler.load(stream())
        assert received == names, "the streamed tensors must follow the announced metadata"
        self.updates.append(names)

    def reset_prefix_cache(self):
        pass


def install_double_engines(monkeypatch, engines: list) -> None:
    """Make TRL's `VLLMGeneration` build a double instead of vLLM (everything else, weight sync included, is
    TRL's own code), and `import vllm` find the stand-in module. Built engines are appended to `engines`."""
    import sys

    import trl.trainer.grpo_trainer  # noqa: F401  (imported before the stand-in exists)
    from trl.generation.vllm_generation import VLLMGeneration

    def init_vllm(self):
        if self.mode == "server":
            self.vllm_client = DoubleClient(self.model, self.processing_class)
            engines.append(self.vllm_client)
        else:
            self.llm = DoubleLLM(self.model, self.processing_class, self.max_model_length)
            if self.enable_sleep_mode:
                self.llm.sleep(level=2)
            self._llm_weights_sleeping = self.enable_sleep_mode
            engines.append(self.llm)

    monkeypatch.setattr(VLLMGeneration, "_init_vllm", init_vllm)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
