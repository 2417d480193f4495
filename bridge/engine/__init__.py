"""Deciding and converging: the diff, ownership, overrun, converge, plan lookups, drift."""
