"""The Lightning layer: LightningModules, DataModule, callbacks, checkpoint IO, logger, progress."""
