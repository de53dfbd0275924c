"""Inbound (MO) messages: reassembly, routing by number and keyword, actions.

The path of an MO (see :mod:`gateway.inbound.service`):

1. The receipt handler gives every deliver_sm / data_sm that is no receipt to
   :meth:`InboundService.handle_pdu` (the MO log, :mod:`~gateway.inbound.molog`). A
   single-part MO is logged as an *interaction* (state ``pending``); a part of a long MO is
   kept in the store. Only then is deliver_sm_resp sent: an acknowledged MO is never lost.
2. Long MOs are reassembled in memory (:mod:`~gateway.inbound.reassembly`) and, when whole
   or timed out, logged as one interaction in the same transaction that drops their parts.
   A restart reloads the kept parts and the pending interactions.
3. Batches (one queue per sender, so one subscriber's MOs are handled in order:
   :mod:`~gateway.inbound.scheduling`, :mod:`~gateway.inbound.batches`) route each
   interaction (:mod:`~gateway.inbound.decision`): the number it was sent to
   (:mod:`~gateway.inbound.numbers`), its campaign (:mod:`~gateway.inbound.campaign_directory`), the
   rule its first word or text matches (:mod:`~gateway.inbound.keywords`), then run the
   rule's actions in order, each through the table of :mod:`~gateway.inbound.actions` (a new
   action is one entry there), or the courtesy reply. What was done is written on the
   interaction (state ``done``).
4. Every reply is an ordinary MT through ``store.accept`` and the dispatcher
   (:mod:`~gateway.inbound.replies`): durable, routed, throttled, with receipts.
"""
