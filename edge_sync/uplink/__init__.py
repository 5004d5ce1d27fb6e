"""Edge to core: the gateway, its outbox, spool and shipper at the edge; the receiver at the core."""
