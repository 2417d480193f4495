"""The bridge's memory in Redis: the store and its Lua scripts, ledger, key lock, rate limiter,
histograms."""
