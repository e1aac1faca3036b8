"""`predict`: every name of a file scored by the model, one TSV row per name."""

from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from makemore_pl.core.files import FileKind, write_atomically
from makemore_pl.core.text import printable

HEADER = "name\ttokens\tnll\tnll_per_token\n"
PREDICTIONS = FileKind("a predictions file (a TSV of `predict`)", HEADER.encode("utf-8"))


class PredictionWriter(BasePredictionWriter):
    """Writes a TSV row (name, tokens, nll, nll_per_token) per name, in file order, atomically."""

    def __init__(self, path: Path, inputs: tuple[str | Path, ...] = ()) -> None:
        super().__init__(write_interval="epoch")
        self.path, self.written, self.rows = Path(path), None, 0
        self.inputs = inputs  # the files the command reads: never written over

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions, batch_indices
    ) -> None:
        if not trainer.is_global_zero:  # every process scores every name; one writes
            return
        words = trainer.datamodule.data.predict_words()
        log_p = torch.cat(predictions).double()  # (N,) log p(next | context), names in order
        tokens = [len(word) + 1 for word in words]
        totals = [-part.sum().item() for part in log_p.split(tokens)] if words else []
        lines = [
            f"{printable(word)}\t{n}\t{nll:.6f}\t{nll / n:.6f}\n"
            for word, n, nll in zip(words, tokens, totals, strict=True)
        ]
        data = (HEADER + "".join(lines)).encode("utf-8")
        write_atomically(self.path, lambda f: f.write(data), inputs=self.inputs, kind=PREDICTIONS)
        self.written, self.rows = self.path, len(lines)
