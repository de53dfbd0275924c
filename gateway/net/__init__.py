"""asyncio side of the carrier links: what comes off the binds and where it goes."""
