"""``python -m gateway ...`` is ``smsgw ...``."""

from gateway.cli import main

raise SystemExit(main())
