"""The command line: the entry point, training and plain commands, run folders, the console."""
