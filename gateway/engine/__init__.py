"""The outbound engine: dispatch to binds, throttling, retries, receipts, callbacks."""
