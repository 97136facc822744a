"""A tiny base model and multi-turn SFT trajectories (with interpreter turns) shared by the scale tests."""

from __future__ import annotations

import pytest

from r1ci_core.chat import exec_message, prompt_messages
from r1ci_core.config import TinyModelConfig, load_recipe
from r1ci_core.trajectory import Trajectory

SHAPE = TinyModelConfig(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=128)
FAMILIES = ("number_multiply", "bbh_boolean_expressions")


def conversation(item, code_turns: int) -> list[dict[str, str]]:
    """Think, `code_turns` code blocks each followed by an interpreter turn, then the answer."""
    messages = prompt_messages(item.question)
    for k in range(code_turns):
        messages.append({"role": "assistant", "content": f"Let me compute it, attempt {k + 1}.\n```python\n"
                                                         f"print({item.answer!r})\n```"})
        messages.append(exec_message(f"{item.answer}\n" * (k + 1)))
    messages.append({"role": "assistant", "content": f"The answer is <<<{item.answer}>>>."})
    return messages


@pytest.fixture(scope="session")
def items():
    from r1ci_core.rollout.tiny import sample_items

    return sample_items(12, families=FAMILIES, seed=1)


@pytest.fixture(scope="session")
def trajectories(items) -> list[Trajectory]:
    """Lengths vary (0 to 2 interpreter turns), so packed rows hold several conversations."""
    return [Trajectory(item_id=it.id, family=it.family, messages=conversation(it, i % 3))
            for i, it in enumerate(items)]


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, items) -> str:
    from r1ci_core.models import build_tiny_model
    from r1ci_core.tasks import registry

    reg = registry()
    texts = [prompt_messages(it.question)[0]["content"] for it in items[:1]] * 8
    for it in items:
        texts += [it.question, reg[it.family].reference_solution(it), f"<<<{it.answer}>>>"]
    return str(build_tiny_model(tmp_path_factory.mktemp("scale") / "base", texts, SHAPE, seed=0))


@pytest.fixture(scope="session")
def tokenizer(base_model):
    from r1ci_core.models import load_tokenizer

    return load_tokenizer(base_model)


@pytest.fixture
def recipe():
    """The tiny recipe with the test model's shape and a few quick SFT steps."""
    return load_recipe("tiny").with_overrides({
        "model.tiny": SHAPE.model_dump(),
        "sft": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 100,
                "logging_steps": 1, "warmup_steps": 0},
    })
