"""A rate limiter shared through Redis by every worker process on every host.

Algorithm: GCRA (generic cell rate algorithm) in its "virtual scheduling" form, with no burst
allowance. Redis holds one value per limiter, the next free send slot (the theoretical arrival
time, TAT) in Redis server time. `acquire()` runs one Lua script, atomic in Redis, that reserves
the slot `max(now, TAT)` for its caller, moves TAT one interval (`period / rate`) past it and
returns how long the caller must sleep until its slot. Callers are therefore served in the order
they reach Redis, nobody polls, and a burst of N callers gets N distinct slots spaced by the
interval. A caller whose slot is more than `max_wait` away reserves nothing and gets a
TransientError (429), so the job is retried later instead of holding a worker.

Guarantee: reserved slots are at least `period / rate` apart, so any window of `period` seconds
(half-open) holds at most `rate` of them. A caller never sends before its slot; it may send a
little after it (the Redis reply's latency and sleep overshoot), and only uneven lateness between
two callers can bring their sends closer than the interval. Pass a slightly longer `period` for
a safety margin against that and against network jitter on the way to the API.

Time comes from Redis (`TIME`), not from the hosts, so workers with skewed clocks agree. The key
expires when its TAT passes (a TAT in the past means "free now"), so idle limiters leave nothing
behind. Needs Redis 5 or newer (scripts replicated by effects).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from bridge.errors import TransientError

KEY_PREFIX = "bridge:ratelimit:"

# KEYS[1]: the TAT (epoch seconds, Redis clock). ARGV[1]: interval; ARGV[2]: max_wait (seconds).
# Returns {reserved (1 or 0), wait in whole microseconds (rounded up, so no caller sends early)}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or 0))
local wait = slot - now
if wait > tonumber(ARGV[2]) then
  return {0, math.ceil(wait * 1000000)}
end
local tat = slot + tonumber(ARGV[1])
-- '%.6f' keeps microseconds: Lua's tostring would round an epoch to 14 significant digits.
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000))
return {1, math.ceil(wait * 1000000)}
"""


class RateLimiter:
    """At most `rate` sends per `period` seconds for all holders of `name`, across processes."""

    def __init__(
        self,
        redis: redis.Redis,
        name: str,
        rate: float = 5.0,
        period: float = 1.0,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not name or rate <= 0 or period <= 0 or max_wait < 0:
            raise ValueError("RateLimiter needs a name, rate > 0, period > 0 and max_wait >= 0")
        self.key = KEY_PREFIX + name
        self._interval = period / rate
        self._max_wait = max_wait
        self._sleep = sleep
        # This process's own next free moment (monotonic clock): should Redis lose the shared
        # pace (flushed, replaced), this process still never sends faster than the rate.
        self._local_next = 0.0
        # register_script talks to Redis only when called (EVALSHA, falling back to EVAL).
        self._reserve = redis.register_script(_RESERVE)

    def acquire(self) -> None:
        """Block until this caller may send one request; TransientError(429) past max_wait."""
        reserved, wait_us = self._reserve(keys=[self.key], args=[self._interval, self._max_wait])
        wait = wait_us / 1_000_000
        if not reserved:
            # The queue ahead is `wait` seconds long: a retry sooner would only be refused again.
            raise TransientError(429, "rate limiter: waited longer than max_wait", retry_after=wait)
        wait = max(wait, self._local_next - time.monotonic())
        if wait > 0:
            self._sleep(wait)
        self._local_next = time.monotonic() + self._interval
