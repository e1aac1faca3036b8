"""Generation: the n-th name depends on the seed alone, chunks stream, zero-probability
characters are never drawn, extreme temperatures and models end in a name or one line."""

import pytest
import torch

from makemore_pl.core.errors import CommandError
from makemore_pl.core.sampling import inverse_cdf, iter_samples, sample


def uniform(v: int):
    return lambda ctx: torch.full((len(ctx), v), -torch.log(torch.tensor(float(v))))


def test_chunks_make_up_the_words_of_sample(monkeypatch):
    monkeypatch.setattr("makemore_pl.core.sampling.CHUNK", 7)
    chunks = list(iter_samples(uniform(5), 2, 20, seed=3))
    assert [len(chunk) for chunk in chunks] == [7, 7, 6]
    assert [w for chunk in chunks for w in chunk] == sample(uniform(5), 2, 20, seed=3)
    assert chunks[0] == sample(uniform(5), 2, 7, seed=3)
    assert chunks[1] != chunks[0] and sample(uniform(5), 2, 20, seed=4) != sample(
        uniform(5), 2, 20, seed=3
    )


def test_the_first_names_do_not_depend_on_how_many_are_asked_for(monkeypatch):
    monkeypatch.setattr("makemore_pl.core.sampling.BLOCK", 4)  # several blocks, some empty words
    many = sample(uniform(3), 1, 40, seed=1)
    assert [sample(uniform(3), 1, n, seed=1) for n in (3, 8, 17)] == [many[:3], many[:8], many[:17]]
    assert all(many) and sample(uniform(3), 1, 40, seed=2) != many


def test_a_character_of_probability_zero_is_never_drawn():
    probs = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]).repeat_interleave(4, 0)
    uniform = torch.tensor([0.0, 0.4999, 0.5, 0.99] * 2, dtype=torch.float64)
    assert inverse_cdf(probs, uniform).tolist() == [0, 0, 2, 2, 2, 2, 2, 2]


def test_asking_for_a_hundred_million_names_starts_printing_at_once():
    first = next(iter_samples(uniform(5), 1, 10**8, seed=0))
    assert len(first) == 10_000 and all(first)


def test_a_vanishing_temperature_is_greedy():
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]]))

    def next_logprobs(ctx):  # after a 2, the boundary is likeliest
        return log_probs[(ctx[:, -1] == 2).long()]

    assert sample(next_logprobs, 1, 50, seed=0, temperature=1e-45) == [[2]] * 50
    assert sample(next_logprobs, 1, 5, seed=0, temperature=5e-324) == [[2]] * 5


def test_a_model_that_always_ends_at_once_is_one_line():
    ends = lambda ctx: torch.log(torch.tensor([[1.0, 0.0]])).expand(len(ctx), 2)  # noqa: E731
    with pytest.raises(CommandError, match="^the model ends almost every word at once: 100 "):
        sample(ends, 1, 3)
