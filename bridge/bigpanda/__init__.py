"""BigPanda: the Maintenance Plans client, one client per organization, the sandbox."""
