"""Figures: the next-character probability heatmap (the lecture's V×V picture)."""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor

from makemore_pl.contexts import row_text
from makemore_pl.data import Vocabulary


def context_label(row: int, vocab: Vocabulary, context_size: int) -> str:
    """Row of the V**c table -> its context as text, e.g. 1 -> '.a', 28 -> 'aa' for V=27, c=2."""
    return row_text(row, vocab.itos, context_size)


def probability_heatmap(
    probs: Tensor,
    contexts: list[int],
    vocab: Vocabulary,
    context_size: int,
    title: str = "",
    annotate: bool = True,
) -> Figure:
    """Heatmap of P(next | context): `probs` (R, V) holds the rows of the V**c-row table whose
    indices are `contexts`. `annotate` prints every value (slower: about 0.7 s for 27 × 27)."""
    data = probs.detach().float().cpu().numpy()
    fig = Figure(
        figsize=(0.42 * len(vocab) + 2, 0.42 * len(data) + 1.5),
    )
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.06, top=0.94)
    ax = fig.add_subplot()
    ax.imshow(data, cmap="Blues", vmin=0, aspect="auto")
    ax.set_xticks(range(len(vocab)), vocab.itos)
    ax.set_yticks(range(len(data)), [context_label(r, vocab, context_size) for r in contexts])
    ax.set_xlabel("next character")
    ax.set_ylabel("context")
    ax.set_title(title)
    for i, row in enumerate(data if annotate else []):
        for j, p in enumerate(row):
            ax.text(
                j,
                i,
                f"{p:.2f}".lstrip("0"),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if p > 0.6 * data.max() else "gray",
            )
    return fig
