"""The SMPP server front: upstream ESMEs bind to smsgw as to a carrier's SMSC."""
