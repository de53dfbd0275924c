"""``python -m gateway ...`` is ``smsgw ...``."""

from gateway.app.cli import main

raise SystemExit(main())
