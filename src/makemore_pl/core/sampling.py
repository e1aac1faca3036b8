"""Generation shared by both models: from all-boundary contexts, one character at a time."""

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from makemore_pl.core.devices import float64_of
from makemore_pl.core.errors import CommandError, SettingError
from makemore_pl.core.vocabulary import Vocabulary

NextLogProbs = Callable[[Tensor], Tensor]  # (B, c) contexts -> (B, V) log-probabilities

# Block k of BLOCK words is drawn from a generator of (seed, k), so the n-th name depends on the
# seed alone, never on how many are asked for; CHUNK words at a time bound the memory.
BLOCK = 1024
CHUNK = 10_000
MAX_TRIES = 100  # blocks drawn before a model that ends almost every word at once is given up on


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
    """`num_samples` non-empty words as character ids (the prefix included, no boundaries);
    `sample(..., 3)` is the start of `sample(..., 8)`."""
    chunks = iter_samples(
        next_logprobs, context_size, num_samples, seed, temperature, prefix, max_length, device
    )
    return [word for chunk in chunks for word in chunk]


def sample_names(
    next_logprobs: NextLogProbs,
    chars: Sequence[str],
    context_size: int,
    num_samples: int,
    seed: int = 0,
    prefix: str = "",
    **kwargs,
) -> list[str]:
    """The words of `sample` as strings of `chars` (ids 1, 2, ...), the prefix a string too."""
    vocab = Vocabulary(chars)
    ids = sample(
        next_logprobs, context_size, num_samples, seed, prefix=vocab.encode(prefix), **kwargs
    )
    return [vocab.decode(word) for word in ids]


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
    """The words of `sample`, as lists of at most CHUNK words, generated as they are asked for."""
    if num_samples < 0:
        raise ValueError(f"num_samples must be 0 or more, got {num_samples}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise SettingError("temperature", f"must be positive, got {temperature}")
    words: list[list[int]] = []
    block = given = 0
    while given < num_samples:
        want = min(CHUNK, num_samples - given)
        blocks = range(block, block + max(1, math.ceil((want - len(words)) / BLOCK)))
        seeds = [block_seed(seed, k) for k in blocks]
        drawn = _generate(
            next_logprobs, context_size, seeds, temperature, prefix, max_length, device
        )
        words += [w for w in drawn if w]
        block = blocks.stop
        if block >= MAX_TRIES and given + len(words) < block:
            raise CommandError(
                f"the model ends almost every word at once: {block} blocks of {BLOCK} draws "
                f"gave {given + len(words)} non-empty words; it cannot generate names (was it "
                "trained?)"
            )
        while len(words) >= want:
            yield words[:want]
            words, given = words[want:], given + want
            want = min(CHUNK, num_samples - given)
            if want == 0:
                return


def block_seed(seed: int, block: int) -> int:
    """Block 0: the seed itself; block k: a 63-bit number drawn from a generator of (seed, k)."""
    if block == 0:
        return seed
    mixer = torch.Generator().manual_seed(seed)
    offset = torch.randint(2**62, (1,), generator=mixer).item()
    return (offset + block * 0x9E3779B97F4A7C15) % 2**63  # a golden-ratio step per block


def _generate(
    next_logprobs, context_size, seeds, temperature, prefix, max_length, device
) -> list[list[int]]:
    """BLOCK words per seed, all advancing together: one model evaluation per character."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]  # the host's: see host_uniforms
    rows = BLOCK * len(seeds)
    context = torch.zeros(rows, context_size, dtype=torch.long, device=device)
    for token in prefix:  # slide the prefix in as if it had been sampled
        context = torch.cat([context[:, 1:], context.new_full((rows, 1), token)], 1)
    drawn = []
    ended = torch.zeros(rows, dtype=torch.bool, device=device)
    for _ in range(max_length):
        probs = tempered(next_logprobs(context), temperature)
        nxt = inverse_cdf(probs, host_uniforms(generators)).to(device)[:, None]  # (B, 1)
        drawn.append(nxt)
        context = torch.cat([context[:, 1:], nxt], 1)
        ended |= nxt[:, 0] == 0
        if ended.all():
            break
    rows_drawn = torch.cat(drawn, 1).tolist() if drawn else [[]] * rows
    return [list(prefix) + (row[: row.index(0)] if 0 in row else row) for row in rows_drawn]


def host_uniforms(generators: list[torch.Generator]) -> Tensor:
    """BLOCK float64 uniforms in [0, 1) from each generator, on the host: the same on any device."""
    return torch.cat([torch.rand(BLOCK, generator=g, dtype=torch.float64) for g in generators])


def inverse_cdf(probs: Tensor, uniform: Tensor) -> Tensor:
    """(B, V) probabilities, (B,) uniforms in [0, 1) -> (B,) draws; probability 0: never drawn."""
    cdf = float64_of(probs).cumsum(-1)
    u = uniform.to(cdf.device)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)


def tempered(log_probs: Tensor, temperature: float) -> Tensor:
    """(B, V) log-probabilities -> (B, V) float32 probabilities of p**(1 / temperature); one so
    small that float32 overflows (1e-45) is redone in float64: greedy decoding."""
    probs = torch.softmax(log_probs.float() / temperature, dim=-1)
    if not torch.isnan(probs).any():
        return probs
    exact = float64_of(log_probs)
    shifted = exact - exact.amax(-1, keepdim=True)
    return torch.softmax(shifted / temperature, dim=-1).float().to(log_probs.device)
