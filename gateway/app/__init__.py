"""The process: the daemon that builds and wires every part and serves HTTP (``daemon``), its
lifecycle (readiness, reload, the data directory's lock: ``lifecycle``), the ``smsgw``
command (``cli``, ``ops_cli``), systemd notification (``sdnotify``) and the
``/metrics`` exposition. The top layer: only ``gateway/__main__.py`` imports it, and its
daemon is the one module outside the HTTP layer that imports ``gateway.http``."""
