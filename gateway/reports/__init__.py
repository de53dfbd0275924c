"""Reports on the two-way side: the interaction CSV (export and digest attachment) and the
daily campaign digest sent by e-mail."""
