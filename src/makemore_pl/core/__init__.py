"""Words, vocabulary, context keys, n-gram counts, batches, sampling: torch and numpy only."""
