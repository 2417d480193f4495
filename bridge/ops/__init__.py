"""What operators run and read: the CLI, `bridge dev`, a change's story, the admin API."""
