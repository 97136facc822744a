"""`release_memory` frees what a finished trainer leaves behind in reference cycles."""

import gc
import weakref

import torch

from r1ci_core.training import release_memory


class _Trainer:  # a trainer-like object: it and its callback refer to each other, as TRL's do
    def __init__(self) -> None:
        self.weights = torch.zeros(1 << 20)
        self.callback = {"trainer": self}


def test_a_trainer_in_a_reference_cycle_is_freed() -> None:
    gc.disable()  # only release_memory may collect here
    try:
        trainer = _Trainer()
        alive = weakref.ref(trainer.weights)
        del trainer
        assert alive() is not None  # a cycle: reference counting alone keeps the weights
        release_memory()
        assert alive() is None
    finally:
        gc.enable()
