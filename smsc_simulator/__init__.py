"""smsc-sim: an SMPP 3.4 SMSC simulator for testing ESMEs (the gateway, or any other).

Built on the gateway's own SMPP layer (``gateway.smpp``: codec, sans-IO session, asyncio
adapter) in the SMSC role. Modules:

- ``server``: the ``Simulator`` (lifecycle, listeners, accounts, MO injection);
- ``account``: one ``Account`` (limits, binds, deliver_sm held for it, receipts built);
- ``esme``: an ``EsmeConnection`` per connection (binds, submit_sm, fault switches);
- ``subscribers``: scripted handsets answering MTs with MOs;
- ``fastpath``: submit_sm, receipts and deliver_sm_resp straight from the bytes;
- ``control``: the JSON control API (stats, messages, MO injection, fault switches);
- ``config``: the typed configuration (``conf/simulator.toml``);
- ``dlr``: receipt timing, outcomes and the receipt deliver_sm;
- ``mo``: mobile-originated messages cut into deliver_sm parts;
- ``faults``: the run-time failure switches;
- ``limits``: the TPS token bucket and message id formats;
- ``scheduler``: one timer for every delayed action;
- ``stats``: the counters;
- ``cli``: the ``smsc-sim`` command.
"""
