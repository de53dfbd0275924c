"""``python -m smsc_simulator``: the same as the ``smsc-sim`` command."""

from smsc_simulator.cli import main

raise SystemExit(main())
