"""The Lightning Trainer, its four commands documented as this package runs them: LightningCLI
takes each command's help, and its options' help, from these docstrings."""

from __future__ import annotations

from collections.abc import Callable

from lightning.pytorch import Trainer

OPTIONS = """
        Args:
            ckpt_path: 'last' or 'best' (that checkpoint of the newest training run under
                --trainer.default_root_dir/lightning_logs) or a checkpoint's path; `fit`
                continues that run in its own folder with its saved settings (options given
                here win).{verbose}
            weights_only: always true: checkpoints are read as tensors and plain values,
                never as code.
        """
VERBOSE = "\n            verbose: print the results table."


def documented(verbose: bool = False) -> Callable:
    """Adds to a command's one-line docstring the help of the options every command shares."""

    def document(method: Callable) -> Callable:
        method.__doc__ += "\n" + OPTIONS.format(verbose=VERBOSE if verbose else "")
        return method

    return document


class MakemoreTrainer(Trainer):
    """The Lightning Trainer, its commands documented as this package runs them."""

    @documented()
    def fit(self, model, datamodule=None, ckpt_path: str | None = None, weights_only: bool = True):
        """Train the neural model; resume a run with --ckpt_path last."""
        return super().fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    @documented(verbose=True)
    def validate(
        self,
        model=None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule=None,
        weights_only: bool = True,
    ):
        """Compute the val NLL of a checkpoint on its own data split."""
        return super().validate(
            model, ckpt_path=ckpt_path, verbose=verbose, datamodule=datamodule, weights_only=True
        )

    @documented(verbose=True)
    def test(
        self,
        model=None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule=None,
        weights_only: bool = True,
    ):
        """Compute the test NLL of a checkpoint beside the counting model of the same order."""
        return super().test(
            model, ckpt_path=ckpt_path, verbose=verbose, datamodule=datamodule, weights_only=True
        )

    @documented()
    def predict(
        self, model=None, datamodule=None, ckpt_path: str | None = None, weights_only: bool = True
    ):
        """Score names with a checkpoint and write one row per name to a TSV file."""
        return super().predict(
            model,
            datamodule=datamodule,
            return_predictions=False,
            ckpt_path=ckpt_path,
            weights_only=True,
        )
