"""The commands that train nothing (sample, baseline, sweep, suffix_sweep): plain functions,
each parsed with its own options and the data's (`--data.*`), none importing Lightning."""
