"""Contact lists, CSV imports and campaigns: what is sent, to whom, when, and how it went."""
