"""Short links with click tracking for campaigns: codes made with each message
(:mod:`gateway.links.codes`), the public redirect listener (:mod:`gateway.links.server`) and
their configuration (:mod:`gateway.config.links`)."""
