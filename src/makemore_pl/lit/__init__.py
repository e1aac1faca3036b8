"""The Lightning layer: thin LightningModules, the DataModule, callbacks, checkpoint files, the
logger, the prediction writer and the Trainer."""
