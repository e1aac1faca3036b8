"""A saved model's next-character log-probabilities, read without the training stack: what
`sample` needs from a checkpoint, at a fraction of the start-up a LightningModule costs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from makemore_pl.checkpoints import model_kind, read_checkpoint
from makemore_pl.dense_table import at_least_float32, dense_logits
from makemore_pl.suffixes import deepest_logits, deepest_rows


@dataclass
class SavedModel:
    """The parts of a checkpoint that generate: settings, and (B, c) -> (B, V) log-probs."""

    hparams: dict
    log_probs: Callable[[Tensor], Tensor]

    @property
    def context_size(self) -> int:
        return self.hparams.get("context_size", 1)


def load_saved_model(path: str, device: torch.device) -> SavedModel:
    """The checkpoint's model, checked as `read_checkpoint` checks it, on `device`; its
    log-probabilities are those of the LightningModule it was saved from, to the bit."""
    checkpoint = read_checkpoint(path)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    state = {k: v.to(device) for k, v in checkpoint["state_dict"].items()}
    v = hparams["vocab_size"]
    if model_kind(path, checkpoint) == "BigramLitModule":
        W = state["W"]
        return SavedModel(hparams, lambda x: torch.log_softmax(dense_logits(W, x, v).float(), -1))
    theta, keys, shortest = (
        state["U"] * state["scale"][:, None],
        state["keys"],
        hparams.get("shortest", 0),
    )

    def suffix_log_probs(x: Tensor) -> Tensor:
        logits = deepest_logits(theta, deepest_rows(keys, x, v, shortest))
        return torch.log_softmax(at_least_float32(logits), dim=-1)

    return SavedModel(hparams, suffix_log_probs)
