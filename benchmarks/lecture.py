"""The lecture's code, kept as the reference the benchmarks compare against."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from makemore_pl import CountingBaseline
from makemore_pl.core.contexts import context_rows


def lecture_counts(words: list[str]) -> Tensor:
    """Bigram counts with a Python loop over every character pair."""
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    counts = torch.zeros((len(stoi), len(stoi)), dtype=torch.int32)
    for w in words:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:], strict=False):
            counts[stoi[ch1], stoi[ch2]] += 1
    return counts


def lecture_step(x: Tensor, y: Tensor, vocab_size: int, l2: float = 0.01) -> Callable[[], float]:
    """One full-batch step: one-hot of the joint context @ W, softmax by hand, SGD at lr 50.

    The one-hot batch is built once, outside the step (the lecture builds it inside its loop,
    which costs more again): the reference is the loop at its fastest.
    """
    num = len(y)
    xenc = F.one_hot(context_rows(x, vocab_size), vocab_size ** x.shape[1]).float()
    W = torch.zeros(xenc.shape[1], vocab_size, requires_grad=True)

    def step() -> float:
        logits = xenc @ W
        counts = logits.exp()
        probs = counts / counts.sum(1, keepdims=True)
        loss = -probs[torch.arange(num), y].log().mean() + l2 * (W**2).mean()
        W.grad = None
        loss.backward()
        W.data += -50 * W.grad
        return loss.item()

    return step


def steps_to_optimum(x: Tensor, y: Tensor, vocab_size: int, limit: int, gap: float = 0.005) -> int:
    """Steps of the lecture loop (l2 = 0) until its loss is within `gap` of the counting optimum."""
    optimum = CountingBaseline(vocab_size, x.shape[1], 0.0).fit(x, y).nll(x, y)
    step = lecture_step(x, y, vocab_size, l2=0.0)
    for n in range(1, limit + 1):
        if step() - optimum < gap:
            return n - 1  # the loss printed by step n is that of the weights after n - 1 steps
    return limit
