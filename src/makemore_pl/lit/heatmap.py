"""The next-character probability heatmap (the lecture's V×V picture) TensorBoard shows."""

import torch
from matplotlib.figure import Figure
from torch import Tensor

from makemore_pl.core.contexts import row_text
from makemore_pl.core.vocabulary import Vocabulary

MAX_COLUMNS = 27  # next characters shown: all of names.txt's
MAX_INCHES = 40  # per side: 4,400 pixels at the 110 dpi figures are saved with


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
    max_columns: int = MAX_COLUMNS,
) -> Figure:
    """P(next | context) of the rows `contexts` (probs: (R, V)), at most `max_columns` next
    characters, the likeliest; `annotate` prints every value (about 0.7 s for 27 × 27)."""
    probs = probs.detach().cpu().double()  # on the host: MPS has no float64
    known = torch.nan_to_num(probs, nan=0.0)  # NaN (of NaN weights): a blank cell, "nan"
    columns = list(range(probs.shape[1]))
    if len(columns) > max_columns:  # the likeliest, in index order
        columns = sorted(known.sum(0).topk(max_columns).indices.tolist())
    data, top = probs[:, columns].numpy(), known[:, columns].max().item() if len(known) else 0
    # bounded whatever R and V: 3,921 characters would otherwise take 1284 × 164882 pixels
    inches = (min(0.42 * len(columns) + 2, MAX_INCHES), min(0.42 * len(data) + 1.5, MAX_INCHES))
    fig = Figure(figsize=inches)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.06, top=0.94)
    ax = fig.add_subplot()
    ax.imshow(data, cmap="Blues", vmin=0, aspect="auto")
    # text from the data is shown as it is: a name with `$` is no mathtext formula
    plain = {"parse_math": False, "usetex": False}
    ax.set_xticks(range(len(columns)), [vocab.itos[j] for j in columns], **plain)
    labels = [context_label(r, vocab, context_size) for r in contexts]
    ax.set_yticks(range(len(data)), labels, **plain)
    some = f" ({len(columns)} most likely of {len(vocab)})" if len(columns) < len(vocab) else ""
    ax.set(xlabel=f"next character{some}", ylabel="context")
    ax.set_title(title, **plain)
    cell = {"ha": "center", "va": "center", "fontsize": 6, **plain}
    for i, row in enumerate(data if annotate else []):
        for j, p in enumerate(row):
            color = "white" if p > 0.6 * top else "gray"
            ax.text(j, i, f"{p:.2f}".lstrip("0"), color=color, **cell)
    return fig
