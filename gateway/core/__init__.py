"""The application core: the message model, routing, intake and validation, and the commit
and hand-off of accepted messages (``submit``). No HTTP here: every edge (the HTTP API, the
SMPP front, inbound replies, campaigns) reaches the dispatcher and the store through it."""
