"""Words, vocabulary, context keys, n-gram counts, batches, the split and sampling: torch and
numpy only."""
