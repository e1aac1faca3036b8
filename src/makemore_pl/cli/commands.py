"""The one table of commands; it imports nothing, so that `--help` stays instant."""

TRAINING = ("fit", "validate", "test", "predict")  # LightningCLI's; the rest are cli/plain/'s

COMMANDS = {  # name -> its one line of help
    "fit": "Train the neural model; resume a run with --ckpt_path last.",
    "validate": "Compute the val NLL of a checkpoint on its own data split.",
    "test": "Compute the test NLL of a checkpoint beside the counting model of the same order.",
    "predict": "Score names with a checkpoint and write one row per name to a TSV file.",
    "sample": "Generate names from a checkpoint or from the counting model.",
    "baseline": "Fit the counting model on the train split and print its NLL on every split.",
    "sweep": "Sweep regularisation on val, plot it and test the best of each model once.",
    "suffix_sweep": (
        "Choose the every-suffix model's L2 (and L1) strengths on val, then test it once."
    ),
}
