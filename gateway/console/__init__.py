"""The web console: pages for operators and campaign users, served by the gateway itself
under ``/console/`` (gateway.console.web)."""
