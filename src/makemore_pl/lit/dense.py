"""`BigramLitModule`: the dense table W (`makemore_pl.models.dense`), cross-entropy + L2."""

import torch

from makemore_pl.core.settings import takes_settings
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.dense import DenseConfig, DenseTable


@takes_settings(DenseConfig)
class BigramLitModule(NgramLitModule):
    """logits = W[context] (index) or one_hot(context) @ W (one-hot): the same numbers."""

    model_class = DenseTable

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resume with another optimizer starts its state afresh (Adam's moments mean nothing
        to SGD); with another lr, the lr given is the one used."""
        super().on_load_checkpoint(checkpoint)
        if checkpoint.get("hyper_parameters", {}).get("optimizer") != self.config.optimizer:
            checkpoint["optimizer_states"] = []
        for state in checkpoint.get("optimizer_states", []):
            for group in state["param_groups"]:
                group["lr"] = self.config.learning_rate

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, params, lr = self.config.optimizer, self.parameters(), self.config.learning_rate
        if name in ("sgd", "adam"):
            return {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[name](params, lr=lr)
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")
