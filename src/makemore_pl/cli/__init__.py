"""The command line: the entry point, the training commands on LightningCLI, the plain
commands, run folders and the console."""
