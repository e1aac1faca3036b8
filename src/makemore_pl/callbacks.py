"""Callbacks the CLI adds to every run: TensorBoard snapshots and the counting reference on test."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from makemore_pl.baseline import CountingBaseline, tune_smoothing
from makemore_pl.data import joint_context
from makemore_pl.model import BigramLitModule
from makemore_pl.plots import probability_heatmap


class LogSnapshots(Callback):
    """Logs TensorBoard snapshots: the next-character heatmap and a few generated names.

    Taken every `every_n_epochs` epochs and at the end of training. Only the final heatmap
    prints its values, so periodic snapshots stay cheap (about 0.15 s)."""

    def __init__(
        self, every_n_epochs: int = 100, num_samples: int = 20, max_rows: int = 27
    ) -> None:
        """
        Args:
            every_n_epochs: epochs between snapshots; 0 = only at the end of training.
            num_samples: names generated per snapshot.
            max_rows: contexts shown in the heatmap: all V rows for a bigram, the most frequent
                training contexts for higher orders.
        """
        self.every_n_epochs, self.num_samples, self.max_rows = every_n_epochs, num_samples, max_rows

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        n = self.every_n_epochs
        if n > 0 and (trainer.current_epoch + 1) % n == 0 and not trainer.sanity_checking:
            self.snapshot(trainer, pl_module, annotate=False)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.snapshot(trainer, pl_module, annotate=True)

    @rank_zero_only
    def snapshot(self, trainer: Trainer, model: BigramLitModule, annotate: bool) -> None:
        logger, vocab = trainer.logger, model.vocab
        if not isinstance(logger, TensorBoardLogger) or vocab is None:
            return
        c, step = model.hparams.context_size, trainer.global_step
        rows = self.heatmap_rows(trainer, model)
        probs = torch.softmax(model.W.detach()[rows].float(), dim=-1)
        title = f"P(next | context), step {step}"
        fig = probability_heatmap(probs, rows, vocab, c, title, annotate)
        logger.experiment.add_figure("next_char_probs", fig, step)
        words = [vocab.decode(w) for w in model.sample(self.num_samples, seed=step)]
        logger.experiment.add_text("samples", "  \n".join(words), step)

    def heatmap_rows(self, trainer: Trainer, model: BigramLitModule) -> list[int]:
        table_rows = len(model.W)
        if table_rows <= self.max_rows:
            return list(range(table_rows))
        x, _, weights = trainer.datamodule.examples("train")
        rows = joint_context(x, model.hparams.vocab_size)
        counts = torch.bincount(rows, weights, minlength=table_rows)
        return sorted(counts.topk(self.max_rows).indices.tolist())


class CountingReference(Callback):
    """Beside the neural model's test_nll, logs `counting_test_nll`: the counting model of the same
    order on the same split, its add-k smoothing chosen on val."""

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = trainer.datamodule
        if not getattr(datamodule, "splits", {}) or len(datamodule.splits["val"][1]) == 0:
            return
        counting = tune_smoothing(self.fit_counts(trainer, pl_module), datamodule.examples("val"))
        rank_zero_info(f"counting reference: add-k smoothing {counting.smoothing} chosen on val")
        nll = torch.tensor(counting.nll(*datamodule.examples("test")), dtype=torch.float64)
        pl_module.log("counting_test_nll", nll)

    @staticmethod
    def fit_counts(trainer: Trainer, pl_module: LightningModule) -> CountingBaseline:
        """The add-0 counting model of the training split, from its streaming counts: every
        process counts the same file to the same table, so nothing is summed across them."""
        hp = pl_module.hparams
        counts = trainer.datamodule.ngram_counts("train").to(pl_module.device)
        return CountingBaseline(hp.vocab_size, hp.context_size, 0.0).fit_counts(counts)


class BestCheckpoint(ModelCheckpoint):
    """checkpoints/best.ckpt: the lowest val_nll among those seen every `every_n_epochs` epochs
    and at the end of training."""

    def __init__(self, every_n_epochs: int = 10) -> None:
        """
        Args:
            every_n_epochs: epochs between looks (a save costs a few ms, about what a full-batch
                epoch does: saving every epoch would double a run's time).
        """
        super().__init__(
            monitor="val_nll",
            mode="min",
            filename="best",
            save_top_k=1,
            every_n_epochs=every_n_epochs,
        )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        score = trainer.callback_metrics.get("val_nll")  # of the final weights
        if score is not None and (self.best_model_score is None or score < self.best_model_score):
            self.best_model_path = self.format_checkpoint_name({})
            self.best_model_score = score
            trainer.save_checkpoint(self.best_model_path)


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt: rewritten every `every_n_epochs` epochs and when training ends,
    so it always holds the final weights and a killed run loses at most those epochs (replayed
    exactly on resume, as training is deterministic)."""

    def __init__(self, every_n_epochs: int = 10) -> None:
        """
        Args:
            every_n_epochs: epochs between saves of last.ckpt (1: after every epoch).
        """
        # an unmonitored top-1 checkpoint named "last": in Lightning 2.6 save_last=True writes
        # nothing mid-run even with save_top_k=0, too late for a killed run
        super().__init__(
            filename="last",
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
            every_n_epochs=every_n_epochs,
        )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.global_step != self._last_global_step_saved:  # the final epochs, if unsaved
            trainer.save_checkpoint(self.format_checkpoint_name({}))
