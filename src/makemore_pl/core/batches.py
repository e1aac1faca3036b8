"""How examples reach the Trainer: whole batches sliced from tensors, or the count table."""

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from makemore_pl.core.contexts import INT64_LIMIT
from makemore_pl.core.errors import DataError
from makemore_pl.core.ngrams import NgramCounts

Batch = tuple[Tensor, Tensor, Tensor]  # contexts (B, c), next characters (B,), counts (B,)
ONE_HOT_LIMIT = 4 * 2**30  # bytes of one one-hot batch; the same model by index needs none


def counts_table(counts: NgramCounts) -> Batch:
    """Distinct (context, next) rows with counts: their weighted mean is every example's mean."""
    x, y = counts.pairs()
    return x, y, counts.counts.float()


def count_table(x: Tensor, y: Tensor, vocab_size: int, weights: Tensor | None = None) -> Batch:
    """The count table of X (N, c), Y (N,): example i counts weights[i] times (once without)."""
    return counts_table(NgramCounts.from_examples(x, y, vocab_size, weights))


def example_table(x: Tensor, y: Tensor, weights: Tensor | None = None) -> Batch:
    """Every example once: a count of 1 per row, or its weight."""
    return x, y, torch.ones(len(y)) if weights is None else weights.float()


class TensorBatches(Dataset):
    """(X, Y, counts) tensors whose item is a whole batch, indexed by a slice or index tensor.
    Each process keeps the rows whose context it owns (`owner`: a rank per row), so that each
    row of W sums its gradient as on one device and several processes train the same weights."""

    def __init__(self, table: Batch, owner: Tensor | None = None, rank: int = 0) -> None:
        self.table, self.owner, self.rank = table, owner, rank

    def __len__(self) -> int:
        return len(self.table[1])

    def __getitem__(self, rows: slice | Tensor) -> Batch:
        batch = tuple(t[rows] for t in self.table)
        if self.owner is None:
            return batch
        mine = self.owner[rows] == self.rank
        return tuple(t[mine] for t in batch)


class BatchSlices(Sampler):
    """One batch's rows at a time: slices in order, or a permutation of (seed, epoch) alone, so
    that a resumed run sees the same batches (Lightning calls `set_epoch`)."""

    def __init__(self, num_rows: int, batch_size: int | None, shuffle: bool, seed: int) -> None:
        self.num_rows, self.seed, self.epoch = num_rows, seed, 0
        self.batch_size = batch_size or max(num_rows, 1)
        self.shuffle = shuffle and self.batch_size < num_rows  # order is moot in a full batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.num_rows / self.batch_size)

    def __iter__(self) -> Iterator[slice | Tensor]:
        if not self.shuffle:
            for start in range(0, self.num_rows, self.batch_size):
                yield slice(start, start + self.batch_size)
            return
        # modulo 2**63: any seed the data accepts stays a valid generator seed
        seed = (self.seed * 1_000_003 + self.epoch) % INT64_LIMIT
        generator = torch.Generator().manual_seed(seed)
        yield from torch.randperm(self.num_rows, generator=generator).split(self.batch_size)


def one_hot_rows(rows: Tensor, num_rows: int, dtype: torch.dtype) -> Tensor:
    """(B,) table rows -> (B, num_rows) one-hot, written straight in `dtype` (F.one_hot would
    first build an int64 copy, 8 bytes per cell: 1.3 GB for the trigram's full batch)."""
    size = len(rows) * num_rows * torch.empty(0, dtype=dtype).element_size()
    if size > ONE_HOT_LIMIT:
        raise DataError(
            f"a one-hot batch of {len(rows):,} rows × {num_rows:,} contexts would take "
            f"{size / 2**30:,.1f} GiB, above the {ONE_HOT_LIMIT // 2**30} GiB limit; use "
            "--data.encoding index (the same model and numbers) or a smaller --data.batch_size"
        )
    out = torch.zeros(len(rows), num_rows, dtype=dtype, device=rows.device)
    return out.scatter_(1, rows[:, None], 1.0)
