"""Streaming statistics over the proxies' access logs (schema `components.render.access_log`), in bounded memory.

One log, or several concatenated (`docker logs` of the gateway and of each service proxy, one after the other),
or interleaved: a line with a `callee` is a call a service proxy carried (per edge, `caller` -> `callee`), any
other line a request at the gateway (per route).

One pass, one line at a time: nothing is kept per request. Memory is bounded by what the plan declares, not by
the log's length:

- per upstream member (a replica, or a workload's Service on Kubernetes) a histogram of upstream response times
  keyed by whole milliseconds. nginx prints times with millisecond resolution, so percentiles from it are exact
  at that resolution (the only error is nginx's own rounding, ≤ 0.5 ms); its size is at most one entry per
  distinct millisecond value (≤ read timeout × 1000);
- per route and per edge a count per second of `msec`, folded into a sliding window once a second is more than
  `SETTLE_S` seconds older than the newest line of that route or edge (nginx workers buffer their lines, so a log
  is only roughly ordered; each proxy's log is in its own time order, so concatenated logs settle each window by
  its own lines); a line older than that still counts in every total and lands in the newest settled second;
- per edge a histogram of the call's time at the proxy (`request_time`) and of the callee's upstream time, of the
  calls a replica answered; the proxy's own refusals and failures are counted by kind (`call_outcome`);
- addresses that map to no member and malformed lines: counted, the first few kept with their line numbers.

A line is parsed by `msgspec` into `LogLine`, a typed view of the fields used here: a line that is not one JSON
object, lacks one of them, has a wrong type or another schema version is malformed. nginx writes the log with
`escape=json`, so a client cannot forge a field from inside a value; a line injected by other means that is
well-formed still has to name an address of the plan to count for a member.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from components.render.access_log import SCHEMA_VERSION

SETTLE_S = 10
DEFAULT_WINDOW_S = 10  # peak req/s is the highest mean over this many seconds: a planning peak, not one second's Poisson noise
KEEP_EXAMPLES = 5
KEEP_UNMAPPED = 20
MS = 1000.0


class LogLine(msgspec.Struct, gc=False):
    """The fields of one access-log line that observe reads (others are ignored); every value is nginx's string.
    `request_time`, `proxy`, `caller` and `callee` may be missing (a gateway log written before they existed)."""

    v: int
    msec: str
    route: str
    status: str
    upstream_addr: str
    upstream_status: str
    upstream_response_time: str
    request_time: str = ""
    proxy: str = ""
    caller: str = ""
    callee: str = ""


_DECODER = msgspec.json.Decoder(LogLine)


@dataclass
class Histogram:
    """Counts per whole millisecond: exact quantiles at nginx's resolution, memory bounded by the value range."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    sum_ms: float = 0.0

    def add(self, ms: float, count: int = 1) -> None:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"{ms} ms is no response time")
        key = int(ms + 0.5)
        self.counts[key] = self.counts.get(key, 0) + count
        self.total += count
        self.sum_ms += ms * count

    def mean(self) -> float | None:
        return self.sum_ms / self.total if self.total else None

    def quantile(self, q: float) -> float | None:
        """The smallest value v with at least q of the samples ≤ v (nearest rank)."""
        if not self.total:
            return None
        rank = max(1, int(q * self.total + 0.999999))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return float(key)
        return float(max(self.counts))


@dataclass
class MemberStats:
    """One upstream member: every try it received (a retried request counts for each server it reached)."""

    tries: int = 0
    served: int = 0  # tries that produced the final response
    errors: int = 0  # tries answered 5xx or with no status (connect error, timeout)
    times: Histogram = field(default_factory=Histogram)  # response times of the tries without error


@dataclass
class WindowPeak:
    """Requests per second over a sliding window of `window_s` settled seconds: the highest mean seen."""

    window_s: int
    pending: dict[int, int] = field(default_factory=dict)
    settled_upto: int | None = None  # every second ≤ this is folded into the window
    newest: int = -1  # the newest second added: what "old enough to settle" is measured from
    window: deque[int] = field(default_factory=deque)
    window_sum: int = 0
    peak_sum: int = 0
    late: int = 0

    def add(self, second: int, count: int = 1) -> None:
        self.newest = max(self.newest, second)
        if self.settled_upto is not None and second <= self.settled_upto:
            self.late += count
            second = self.settled_upto + 1  # counted with the oldest second still open
        self.pending[second] = self.pending.get(second, 0) + count

    def settle(self, before: int | None) -> None:
        """Fold every pending second < `before` (None: all) into the window, in order, including empty seconds."""
        ready = sorted(s for s in self.pending if before is None or s < before)
        for second in ready:
            if self.settled_upto is not None:
                for _ in range(min(second - self.settled_upto - 1, self.window_s)):
                    self._push(0)  # seconds without a request
            self._push(self.pending.pop(second))
            self.settled_upto = second

    def _push(self, count: int) -> None:
        self.window.append(count)
        self.window_sum += count
        if len(self.window) > self.window_s:
            self.window_sum -= self.window.popleft()
        self.peak_sum = max(self.peak_sum, self.window_sum)

    def peak_rps(self) -> float:
        return self.peak_sum / self.window_s


@dataclass
class RouteStats:
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    served_by: dict[tuple[str, int], int] = field(default_factory=dict)  # final member -> requests
    no_server_left: int = 0  # nginx named the upstream: every server at max_conns or down
    rate: WindowPeak = field(default_factory=lambda: WindowPeak(DEFAULT_WINDOW_S))


Outcome = Literal["answered", "limited", "unavailable", "failed", "refused"]
_TCP_OUTCOMES: dict[str, Outcome] = {"200": "answered", "503": "limited", "502": "unavailable"}


def call_outcome(protocol: str, status: str, upstream_addr: str, upstream_status: str) -> Outcome:
    """What became of one call, from its line: a replica `answered` it (any status it gave, 4xx included), the
    proxy `limited` it (a rate or concurrency limit), no replica could take it (`unavailable`), it `failed` in another
    way (a timeout, a replica's 5xx), or the proxy `refused` it for another reason (a malformed request, 4xx).

    Per protocol, as the service proxy answers (`components/render`): http answers 429 over a limit and 503 when no
    replica is left; grpc answers every refusal of its own as a trailers-only response whose HTTP status is 204 (the
    gRPC status is in the headers, not in the log), so the log tells them apart by what was tried: nothing (a limit:
    RESOURCE_EXHAUSTED), the upstream's name or a 502/503 (UNAVAILABLE), a 504 (DEADLINE_EXCEEDED); a tcp connection's
    `$status` is 200, 503 when `limit_conn` closed it, 502 when no member took it. gRPC errors a replica returns
    itself travel in trailers under HTTP 200 and count as answered."""
    tried = upstream_addr not in ("", "-")
    if protocol == "grpc" and status == "204":
        if not tried:
            return "limited"
        last = upstream_status.rsplit(", ", 1)[-1].rsplit(" : ", 1)[-1]
        return "failed" if last == "504" else "unavailable"
    if protocol == "tcp":
        return _TCP_OUTCOMES.get(status, "failed" if status[:1] == "5" else "refused")
    if status == "429":
        return "limited"
    if status == "503":
        return "unavailable"
    if status[:1] == "5":
        return "failed"
    return "answered" if tried else "refused"


@dataclass
class CallStats:
    """One edge of the service graph as its callee's service proxy saw it: every call `caller` made to `callee`."""

    proxy: str = ""
    protocol: str = "http"
    calls: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # call_outcome -> calls
    served_by: dict[tuple[str, int], int] = field(default_factory=dict)  # final member -> calls
    no_server_left: int = 0
    latency: Histogram = field(default_factory=Histogram)  # request_time at the proxy of the answered calls
    upstream: Histogram = field(default_factory=Histogram)  # the callee's time of the answered calls (not tcp)
    rate: WindowPeak = field(default_factory=lambda: WindowPeak(DEFAULT_WINDOW_S))


@dataclass
class Problem:
    line: int
    text: str


@dataclass
class LogStats:
    """Everything one pass over a log found; `members` keys are (workload, member index), `calls` keys (caller,
    callee) as the service proxies logged them (`-` for the caller where callers share one address)."""

    lines: int = 0
    requests: int = 0  # lines of the gateway: requests from outside
    malformed: int = 0
    malformed_examples: list[Problem] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)  # address -> tries (the first KEEP_UNMAPPED addresses)
    unmapped_tries: int = 0
    unmapped_examples: list[Problem] = field(default_factory=list)
    members: dict[tuple[str, int], MemberStats] = field(default_factory=dict)
    routes: dict[str, RouteStats] = field(default_factory=dict)
    calls: dict[tuple[str, str], CallStats] = field(default_factory=dict)
    proxies: dict[str, int] = field(default_factory=dict)  # proxy -> lines (the gateway's: `gateway`, or "" before v1.1 logs)
    first_ms: float | None = None
    last_ms: float | None = None

    @property
    def span_s(self) -> float:
        return 0.0 if self.first_ms is None or self.last_ms is None else (self.last_ms - self.first_ms) / MS

    @property
    def call_lines(self) -> int:
        return sum(edge.calls for edge in self.calls.values())


class LogReader:
    """Feed lines (bytes) in order; `finish()` returns the `LogStats`.

    `members` maps an upstream address as nginx logs it ("ip:port", or the Service "host:port") to its
    (workload, member index): the gateway's and the service proxies' (on Docker a replica has one address per
    link, so both map to it); `upstreams` are the plan's upstream names (nginx logs one when no server was left);
    `protocols` each called workload's protocol (a tcp proxy's line is a connection: no response time, no
    upstream status).

    Per line only the decode, two tallies and a set lookup run: lines are tallied by (route, status, upstream
    fields) — a call by (caller, callee, proxy, status, upstream fields, request time) — and by (route or edge,
    second), and the tallies are folded into the statistics every `FOLD_LINES` lines. A log repeats few distinct
    tallies (routes × members × millisecond values), so folding is cheap, and the folded result is the same as
    line by line — except for a line more than `SETTLE_S` seconds out of order: whether it counts as late (into the
    newest settled second) depends on where the batch boundaries fall, as a window settles per batch, not per line.
    An address outside the plan is noted with its line number when it is read.
    """

    FOLD_LINES = 65536

    def __init__(self, members: Mapping[str, tuple[str, int]], upstreams: set[str], window_s: int = DEFAULT_WINDOW_S,
                 protocols: Mapping[str, str] | None = None) -> None:
        self.members = dict(members)
        self.upstreams = upstreams
        self.protocols = dict(protocols or {})
        self.known = set(members) | {"", "-"}
        self.window_s = window_s
        self.stats = LogStats(members={m: MemberStats() for m in sorted(set(members.values()))})
        self._tallies: dict[tuple[str, str, str, str, str, str], int] = {}
        self._call_tallies: dict[tuple[str, str, str, str, str, str, str, str], int] = {}
        self._seconds: dict[tuple[str, int], int] = {}
        self._call_seconds: dict[tuple[str, str, int], int] = {}
        self._read = 0
        self._first_s, self._last_s = math.inf, -math.inf

    def feed(self, number: int, line: bytes) -> None:
        try:
            entry = _DECODER.decode(line)
            ended = float(entry.msec)
            second = int(ended)
            if entry.v < SCHEMA_VERSION:
                raise ValueError(f"schema version {entry.v}, observe reads version {SCHEMA_VERSION} and later")
        except (msgspec.DecodeError, ValueError, OverflowError) as error:
            self._malformed(number, line, error)
            return
        stats = self.stats
        stats.lines += 1
        if ended > self._last_s:
            self._last_s = ended
        if ended < self._first_s:
            self._first_s = ended
        address = entry.upstream_addr
        if entry.callee:
            call = (entry.caller, entry.callee, entry.proxy, entry.status, address, entry.upstream_status,
                    entry.upstream_response_time, entry.request_time)
            self._call_tallies[call] = self._call_tallies.get(call, 0) + 1
            edge_second = (entry.caller, entry.callee, second)
            self._call_seconds[edge_second] = self._call_seconds.get(edge_second, 0) + 1
        else:
            stats.requests += 1
            key = (entry.route, entry.proxy, entry.status, address, entry.upstream_status, entry.upstream_response_time)
            tallies = self._tallies
            tallies[key] = tallies.get(key, 0) + 1
            per_second = (entry.route, second)
            seconds = self._seconds
            seconds[per_second] = seconds.get(per_second, 0) + 1
        if address not in self.known:
            self._note_addresses(number, address)
        self._read += 1
        if not self._read % self.FOLD_LINES:
            self._fold(final=False)

    def _malformed(self, number: int, line: bytes, error: Exception) -> None:
        if not line.strip():
            return  # a blank line is no log line
        stats = self.stats
        stats.lines += 1
        stats.malformed += 1
        if len(stats.malformed_examples) < KEEP_EXAMPLES:
            stats.malformed_examples.append(Problem(number, f"{str(error)[:120]}: {line[:80]!r}"))

    def _note_addresses(self, number: int, logged: str) -> None:
        """Examples, with line numbers, of tried addresses that name no member (retries list several)."""
        stats = self.stats
        for address in _split(logged):
            if address not in self.members and address not in self.upstreams and len(stats.unmapped_examples) < KEEP_EXAMPLES:
                stats.unmapped_examples.append(Problem(number, f"upstream address {address[:80]!r} is no member of the plan"))

    def _fold(self, final: bool) -> None:
        stats = self.stats
        for (name, proxy, status, address, upstream_status, times), count in self._tallies.items():
            route = stats.routes.get(name)
            if route is None:
                route = stats.routes[name] = RouteStats(rate=WindowPeak(self.window_s))
            route.requests += count
            route.statuses[status] = route.statuses.get(status, 0) + count
            stats.proxies[proxy] = stats.proxies.get(proxy, 0) + count
            if address not in ("", "-"):
                self._tries(route, address, upstream_status, times, count)
        for (name, second), count in sorted(self._seconds.items(), key=lambda item: item[0][1]):
            stats.routes[name].rate.add(second, count)
        for call, count in self._call_tallies.items():
            self._fold_call(call, count)
        for (caller, callee, second), count in sorted(self._call_seconds.items(), key=lambda item: item[0][2]):
            stats.calls[(caller, callee)].rate.add(second, count)
        for window in [r.rate for r in stats.routes.values()] + [c.rate for c in stats.calls.values()]:
            window.settle(None if final else window.newest - SETTLE_S)
        self._tallies.clear()
        self._seconds.clear()
        self._call_tallies.clear()
        self._call_seconds.clear()
        if stats.lines - stats.malformed:
            stats.first_ms, stats.last_ms = self._first_s * MS, self._last_s * MS

    def _fold_call(self, call: tuple[str, str, str, str, str, str, str, str], count: int) -> None:
        caller, callee, proxy, status, address, upstream_status, times, request_time = call
        stats = self.stats
        protocol = self.protocols.get(callee, "http")
        edge = stats.calls.get((caller, callee))
        if edge is None:
            edge = stats.calls[(caller, callee)] = CallStats(proxy=proxy, protocol=protocol, rate=WindowPeak(self.window_s))
        edge.calls += count
        edge.statuses[status] = edge.statuses.get(status, 0) + count
        outcome = call_outcome(protocol, status, address, upstream_status)
        edge.outcomes[outcome] = edge.outcomes.get(outcome, 0) + count
        stats.proxies[proxy] = stats.proxies.get(proxy, 0) + count
        if address not in ("", "-"):
            self._tries(edge, address, upstream_status, times, count, timed=protocol != "tcp", failed=outcome != "answered")
        if outcome == "answered":
            _sample(edge.latency, request_time, count)
            if protocol != "tcp":
                _sample(edge.upstream, _split(times)[-1], count)

    def _tries(self, route: RouteStats | CallStats, logged: str, logged_statuses: str, logged_times: str, count: int,
               timed: bool = True, failed: bool = False) -> None:
        """`count` requests with the same tries: `upstream_*` list them with ", " (" : " between upstream groups).
        An untimed try (a tcp connection: its time is the session's, it has no status) is an error when another
        member was tried after it, or when the connection `failed`."""
        addresses, statuses, times = _split(logged), _split(logged_statuses), _split(logged_times)
        last = len(addresses) - 1
        for i, address in enumerate(addresses):
            member = self.members.get(address)
            if member is None:
                if address in self.upstreams:
                    route.no_server_left += count
                else:
                    self._unmapped(address, count)
                continue
            stats = self.stats.members[member]
            stats.tries += count
            if i == last:
                stats.served += count
                route.served_by[member] = route.served_by.get(member, 0) + count
            if not timed:
                if i < last or failed:
                    stats.errors += count
                continue
            status = statuses[i] if i < len(statuses) else "-"
            if status[:1] == "5" or not status[:1].isdigit():
                stats.errors += count
                continue
            try:
                stats.times.add(float(times[i]) * MS if i < len(times) else math.nan, count)
            except ValueError:
                stats.errors += count

    def _unmapped(self, address: str, count: int) -> None:
        stats = self.stats
        stats.unmapped_tries += count
        if address in stats.unmapped or len(stats.unmapped) < KEEP_UNMAPPED:
            stats.unmapped[address] = stats.unmapped.get(address, 0) + count

    def finish(self) -> LogStats:
        self._fold(final=True)
        return self.stats


def _sample(histogram: Histogram, seconds: str, count: int) -> None:
    """A logged time in seconds into a histogram of milliseconds; a value nginx did not print ("-") is no sample."""
    with contextlib.suppress(ValueError):
        histogram.add(float(seconds) * MS, count)


def _split(logged: str) -> list[str]:
    return logged.replace(" : ", ", ").split(", ") if "," in logged or " : " in logged else [logged]
