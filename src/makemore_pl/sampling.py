"""Generation shared by both models: from all-boundary contexts, one character at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

NextLogProbs = Callable[[Tensor], Tensor]  # (B, c) contexts -> (B, V) log-probabilities


def sample(
    next_logprobs: NextLogProbs,
    context_size: int,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    prefix: Sequence[int] = (),
    max_length: int = 50,
    device: torch.device | str = "cpu",
) -> list[list[int]]:
    """`num_samples` non-empty words as character ids (the prefix included, no boundaries).

    All samples advance together, so a call costs about `max_length` model evaluations. Words that
    end at once are empty and are drawn again; the result depends only on the arguments.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be 0 or more, got {num_samples}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    generator = torch.Generator(device=device).manual_seed(seed)
    words: list[list[int]] = []
    for _ in range(100):  # a model that almost always ends at once would loop forever
        if len(words) >= num_samples:
            return words[:num_samples]
        batch = _generate(
            next_logprobs,
            context_size,
            num_samples,
            generator,
            temperature,
            prefix,
            max_length,
            device,
        )
        words += [w for w in batch if w]
    raise RuntimeError("the model generates empty words almost always; cannot draw non-empty ones")


def _generate(
    next_logprobs, context_size, num_samples, generator, temperature, prefix, max_length, device
) -> list[list[int]]:
    context = torch.zeros(num_samples, context_size, dtype=torch.long, device=device)
    for token in prefix:  # slide the prefix in as if it had been sampled
        context = torch.cat([context[:, 1:], context.new_full((num_samples, 1), token)], 1)
    drawn = []
    ended = torch.zeros(num_samples, dtype=torch.bool, device=device)
    for _ in range(max_length):
        probs = torch.softmax(next_logprobs(context).float() / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        drawn.append(nxt)
        context = torch.cat([context[:, 1:], nxt], 1)
        ended |= nxt[:, 0] == 0
        if ended.all():
            break
    words = []
    for row in torch.cat(drawn, 1).tolist():
        end = row.index(0) if 0 in row else len(row)
        words.append(list(prefix) + row[:end])
    return words
