"""Generation shared by both models: from all-boundary contexts, one character at a time."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from makemore_pl.core.devices import float64_of
from makemore_pl.core.errors import CommandError, SettingError

NextLogProbs = Callable[[Tensor], Tensor]  # (B, c) contexts -> (B, V) log-probabilities

# Words are generated CHUNK at a time, each chunk with its own generator, so that memory stays
# bounded (50 steps x CHUNK ids) however many are asked for. Chunk 0 is seeded with `seed`
# itself: up to CHUNK words, the draws are those of one batch of num_samples, as they always were.
CHUNK = 10_000
MAX_TRIES = 100  # batches drawn for a chunk before a model that ends at once is given up on


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

    All words of a chunk advance together, so a chunk costs about `max_length` model
    evaluations. Words that end at once are empty and are drawn again; the result depends only
    on the arguments. `iter_samples` yields the same words chunk by chunk.
    """
    chunks = iter_samples(
        next_logprobs, context_size, num_samples, seed, temperature, prefix, max_length, device
    )
    return [word for chunk in chunks for word in chunk]


def iter_samples(
    next_logprobs: NextLogProbs,
    context_size: int,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    prefix: Sequence[int] = (),
    max_length: int = 50,
    device: torch.device | str = "cpu",
) -> Iterator[list[list[int]]]:
    """The words of `sample`, as lists of at most CHUNK words, generated as they are asked for.

    Chunk k > 0 draws with a generator seeded from (seed, k): its words do not depend on how
    many came before it, nor on anything but the arguments.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be 0 or more, got {num_samples}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise SettingError("temperature", f"must be positive, got {temperature}")
    for first in range(0, num_samples, CHUNK):
        size = min(CHUNK, num_samples - first)
        generator = torch.Generator(device=device).manual_seed(chunk_seed(seed, first // CHUNK))
        args = (temperature, prefix, max_length, device)
        yield _chunk(next_logprobs, context_size, size, generator, *args)


def chunk_seed(seed: int, chunk: int) -> int:
    """Chunk 0: the seed itself; chunk k: a 63-bit number drawn from a generator of (seed, k),
    so that no two (seed, chunk) pairs are likely to share a stream."""
    if chunk == 0:
        return seed
    mixer = torch.Generator().manual_seed(seed)
    offset = torch.randint(2**62, (1,), generator=mixer).item()
    return (offset + chunk * 0x9E3779B97F4A7C15) % 2**63  # a golden-ratio step per chunk


def _chunk(
    next_logprobs, context_size, size, generator, temperature, prefix, max_length, device
) -> list[list[int]]:
    words: list[list[int]] = []
    for _ in range(MAX_TRIES):  # a model that almost always ends at once would loop forever
        if len(words) >= size:
            return words[:size]
        batch = _generate(
            next_logprobs, context_size, size, generator, temperature, prefix, max_length, device
        )
        words += [w for w in batch if w]
    raise CommandError(
        f"the model ends almost every word at once: {MAX_TRIES} batches of {size} draws gave "
        f"{len(words)} non-empty words; it cannot generate names (was it trained?)"
    )


def _generate(
    next_logprobs, context_size, num_samples, generator, temperature, prefix, max_length, device
) -> list[list[int]]:
    context = torch.zeros(num_samples, context_size, dtype=torch.long, device=device)
    for token in prefix:  # slide the prefix in as if it had been sampled
        context = torch.cat([context[:, 1:], context.new_full((num_samples, 1), token)], 1)
    drawn = []
    ended = torch.zeros(num_samples, dtype=torch.bool, device=device)
    for _ in range(max_length):
        probs = tempered(next_logprobs(context), temperature)
        nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        drawn.append(nxt)
        context = torch.cat([context[:, 1:], nxt], 1)
        ended |= nxt[:, 0] == 0
        if ended.all():
            break
    words = []
    for row in torch.cat(drawn, 1).tolist() if drawn else [[]] * num_samples:
        end = row.index(0) if 0 in row else len(row)
        words.append(list(prefix) + row[:end])
    return words


def tempered(log_probs: Tensor, temperature: float) -> Tensor:
    """(B, V) log-probabilities -> (B, V) float32 probabilities of p**(1 / temperature).

    A temperature so small that log_probs / temperature overflows float32 (1e-45) is computed
    in float64 from each row's maximum (on the host where the device has no float64), which
    then gets all the mass: greedy decoding."""
    probs = torch.softmax(log_probs.float() / temperature, dim=-1)
    if not torch.isnan(probs).any():
        return probs
    exact = float64_of(log_probs)
    shifted = exact - exact.amax(-1, keepdim=True)
    return torch.softmax(shifted / temperature, dim=-1).float().to(log_probs.device)
