"""The users' real traffic, per version, from a Prometheus server's HTTP API (urllib only).

`PrometheusSource.sample()` reads cumulative counters per scrape target and version at one
evaluation time, with each target's last scrape time. `Rounds` turns samples into increments per
version (requests, 5xx errors, answers slower than the p99 limit) in whole scrape rounds, which
feed `model.judge.Judge.observe_counts` the way probe answers feed `observe`:

    source = PrometheusSource("http://prometheus:9090", "v2", max_p99=0.5, selector='namespace="app-update"')
    rounds = Rounds(source)                    # the baseline: at the step's start
    ...                                        # a few times per scrape interval:
    increments = rounds.poll()                 # None until every target has been scraped again
    if increments is not None:
        for version, counts in increments.items():
            judge.observe_counts(version, counts.requests, counts.errors, counts.slow)
        verdict = judge.verdict()

Why rounds: each target is scraped at its own moment within the interval, so at any instant one
version's counters are fresher than another's. Increments taken when every target has been
scraped again cover one scrape interval per target, so the canary's share of them is its share
of the traffic (taken at an arbitrary instant, one version's traffic of a whole interval may be
missing). Traffic that changes within a round (a weight change) still skews a round: so
`wait_for_step` starts a step's rounds only once the canary has series and every target has been
scraped after the weight became live (Prometheus's own clock; reported, with a deadline), and
`rollout canary` refuses a step `--interval` shorter than three scrape intervals (`scrape_interval`
reads them from /api/v1/targets). A target whose scrapes fail drops out of the queries (Prometheus marks its series
stale) and is not waited for; its counters are remembered, so when it comes back only what it
counted since is new. The canary's targets all gone is different: a round without its counters would read as
traffic not reaching it, so the round stays open until they are back, and an error names the canary after a grace
(`Rounds`; `rollout canary` gives three scrape intervals). A target that restarted (its counter went down) counts what it counted
since its restart, as Prometheus's own increase() does, but without extrapolation: counts stay whole.

The PromQL it runs (instant queries at one evaluation time, `/api/v1/query`; the scrape times
before and after the others, see PrometheusSource.sample), with the default labels (the sample
app's metrics, app/server.py):

    sum by (job, instance, version, code) (app_requests_total{<selector>})
    max by (job, instance) (timestamp(app_requests_total{<selector>}))
    sum by (job, instance, version, le) (app_request_duration_seconds_bucket{<selector>})

Errors are the series whose `code` fully matches `error_codes` (5..). Slow answers come from the
histogram: the count in `+Inf` minus the count in the smallest bucket whose bound is at or above
the p99 limit. When the limit is a bucket bound (the app's buckets include 0.1, 0.25, 0.5 and 1 s)
that is exact; otherwise answers between the limit and that bucket's bound are not counted as
slow (never a fast answer counted slow). With no finite bucket at or above the limit, nothing is.

Every query is scoped to one release: `<selector>` is `Labels.release` filled in from the stack
(`release_selector`: {namespace} from its outputs, {release} and {service} from its config), so
another workload in the namespace (staging's app-rolling on the stable tag) or an earlier run's pods
never count. For the app's own metrics it names the pods of the release's two Deployments, by the
`namespace` and `pod` labels that both the Prometheus Operator (PodMonitor/ServiceMonitor) and the
common `kubernetes-pods` scrape job attach:

    namespace="{namespace}",pod=~"{release}-(stable|canary)-[a-z0-9]+-[a-z0-9]+"

A scrape config that names them otherwise takes its own template (`rollout canary --metrics-selector`).

Other metrics, the same way (`Labels`; presets below):

    ISTIO          istio_requests_total{destination_version, response_code}, reporter="destination";
                   istio_request_duration_milliseconds (le in milliseconds); the release is its
                   destination workloads: destination_workload_namespace="{namespace}",
                   destination_workload=~"{release}-(stable|canary)"
    INGRESS_NGINX  nginx_ingress_controller_requests{canary, status}, where `canary` names the canary
                   backend (<namespace>-<service>-<port>) for requests routed to it and is empty for the
                   others: pass that name as the canary version; the histogram is
                   nginx_ingress_controller_request_duration_seconds; the release is its two Ingresses:
                   exported_namespace="{namespace}",ingress=~"{service}|{service}-canary" (the
                   Operator renames the Ingress's `namespace` to `exported_namespace`, since the
                   controller's pod has a namespace of its own; plain `namespace` without it)

Every failure is a PrometheusError with a one-line message: unreachable, an error answered (the
API's own errorType and error), an answer that is not the API's, no series at all, or none for
the canary version.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

CONSISTENT_READS = 5  # reads of one sample before the last is taken as it is (see PrometheusSource.sample)


class PrometheusError(Exception):
    """Prometheus could not answer what the source asked; the message is one line."""


@dataclass(frozen=True)
class Labels:
    """Which metrics and labels carry requests, versions, status codes and latency."""

    requests: str = "app_requests_total"  # a counter of answered requests
    version: str = "version"  # the label that tells versions apart
    code: str = "code"  # the label with the HTTP status code
    error_codes: str = "5.."  # errors: codes fully matching this regular expression
    duration: str | None = "app_request_duration_seconds"  # a histogram (its _bucket series); None: no latency
    duration_version: str | None = None  # the histogram's version label, when it differs from `version`
    duration_unit: float = 1.0  # seconds per unit of the histogram's `le` (milliseconds: 0.001)
    selector: str = ""  # label matchers every query carries, e.g. 'namespace="app-update"'
    # Matchers naming one release's series, {namespace}, {release} and {service} filled in from the stack
    # (release_selector): the pods of its two Deployments, <release>-stable-<hash>-<hash> and -canary-.
    release: str = 'namespace="{namespace}",pod=~"{release}-(stable|canary)-[a-z0-9]+-[a-z0-9]+"'


APP = Labels()
ISTIO = Labels(requests="istio_requests_total", version="destination_version", code="response_code",
               duration="istio_request_duration_milliseconds", duration_unit=0.001,
               selector='reporter="destination"',
               release='destination_workload_namespace="{namespace}",destination_workload=~"{release}-(stable|canary)"')
INGRESS_NGINX = Labels(requests="nginx_ingress_controller_requests", version="canary", code="status",
                       duration="nginx_ingress_controller_request_duration_seconds",
                       release='exported_namespace="{namespace}",ingress=~"{service}|{service}-canary"')


def release_selector(template: str, *, namespace: str, release: str, service: str) -> str:
    """Label matchers naming one release's series: `template` ({namespace}, {release}, {service}) filled
    in from the stack's outputs and config. Kubernetes names (lower-case letters, digits, '-', '.') need
    no quoting in a PromQL string, and inside a =~ pattern a '.' only ever matches more, never less."""
    for what, value in (("namespace", namespace), ("release", release), ("service", service)):
        if not _KUBERNETES_NAME.fullmatch(value):
            raise PrometheusError(f"{what} {value!r} is not a Kubernetes name")
    try:
        return template.format(namespace=namespace, release=release, service=service)
    except (KeyError, IndexError, ValueError) as error:
        raise PrometheusError(_line(f"the metrics selector {template!r} has a placeholder other than {{namespace}}, "
                                    f"{{release}} and {{service}} ({error})")) from None


_KUBERNETES_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration ("15s", "1m30s", "200ms") in seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PrometheusError(f"{text!r} is not a Prometheus duration")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class Counts:
    requests: int = 0
    errors: int = 0
    slow: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.requests + other.requests, self.errors + other.errors, self.slow + other.slow)


Target = tuple[str, str, str]  # (job, instance, version)


@dataclass(frozen=True)
class Sample:
    """Cumulative counters at one Prometheus evaluation time, per scrape target and version."""

    time: float
    requests: dict[Target, tuple[float, float]] = field(default_factory=dict)  # → (requests, errors)
    latency: dict[Target, tuple[float, float]] = field(default_factory=dict)  # → (all, slow)
    scraped: dict[tuple[str, str], float] = field(default_factory=dict)  # (job, instance) → last scrape time

    def merged_into(self, earlier: Sample) -> Sample:
        """This sample, plus what `earlier` knew of targets missing from it (stale for now)."""
        return Sample(time=self.time, requests={**earlier.requests, **self.requests},
                      latency={**earlier.latency, **self.latency}, scraped={**earlier.scraped, **self.scraped})

    def totals(self) -> dict[str, Counts]:
        """Counts per version since each target started (what the counters say now)."""
        return self.since(Sample(time=-math.inf))

    def since(self, earlier: Sample) -> dict[str, Counts]:
        """Increments per version from `earlier` to this sample. A target whose counter went down
        restarted: its increment is what it counted since. A target new since `earlier` counts whole."""
        counts: dict[str, Counts] = {}
        for target, (requests, errors) in self.requests.items():
            before = earlier.requests.get(target)
            if before is not None and requests >= before[0]:
                requests, errors = requests - before[0], max(0.0, errors - before[1])
            all_, slow = self.latency.get(target, (0.0, 0.0))
            before_latency = earlier.latency.get(target)
            if before_latency is not None and all_ >= before_latency[0]:
                slow = max(0.0, slow - before_latency[1])
            whole = round(requests)
            delta = Counts(whole, min(whole, round(errors)), min(whole, round(slow)))
            version = target[2]
            counts[version] = counts.get(version, Counts()) + delta
        return counts


class PrometheusSource:
    """Instant queries against a Prometheus HTTP API, for one canary version."""

    def __init__(self, url: str, canary_version: str, max_p99: float, *, labels: Labels = APP,
                 selector: str | None = None, timeout: float = 5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrometheusError(f"the Prometheus URL must be http(s)://host:port[/prefix] (got {url!r})")
        for name in (labels.version, labels.code, labels.duration_version or labels.version):
            if not _LABEL.fullmatch(name):
                raise PrometheusError(f"{name!r} is not a Prometheus label name")
        for name in (labels.requests, labels.duration or "x"):
            if not _METRIC.fullmatch(name):
                raise PrometheusError(f"{name!r} is not a Prometheus metric name")
        if not max_p99 > 0 or labels.duration_unit <= 0:
            raise PrometheusError("max_p99 and the duration unit must be more than 0")
        self.url = url.rstrip("/")
        self.canary_version = canary_version
        self.max_p99 = max_p99
        self.labels = labels
        self.selector = labels.selector if selector is None else ",".join(
            part for part in (labels.selector, selector) if part)
        self.timeout = timeout
        self._errors = re.compile(labels.error_codes)
        self.slow_bucket: float | None = None  # seconds: the bucket bound "slow" is counted above, once known

    # -- the queries -----------------------------------------------------------------------------

    @property
    def requests_query(self) -> str:
        lab = self.labels
        return f"sum by (job, instance, {lab.version}, {lab.code}) ({lab.requests}{{{self.selector}}})"

    @property
    def scraped_query(self) -> str:
        return f"max by (job, instance) (timestamp({self.labels.requests}{{{self.selector}}}))"

    @property
    def latency_query(self) -> str | None:
        lab = self.labels
        if lab.duration is None:
            return None
        return f"sum by (job, instance, {lab.duration_version or lab.version}, le) ({lab.duration}_bucket{{{self.selector}}})"

    def query(self, promql: str, at: float | None = None) -> tuple[float, list[tuple[dict[str, str], float]]]:
        """An instant query: (evaluation time, [(labels, value)])."""
        params = {"query": promql}
        if at is not None:
            params["time"] = repr(at)
        request = urllib.request.Request(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}",
                                         headers={"Accept": "application/json", "User-Agent": "app-update-canary"})
        where = f"Prometheus at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise PrometheusError(_line(f"{where} is unreachable: {reason}")) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusError(_line(f"{where} answered HTTP {status} with something that is not the Prometheus "
                                        f"API's JSON (is the URL right?)")) from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            kind = answer.get("errorType", "error") if isinstance(answer, dict) else "error"
            text = answer.get("error", "no error text") if isinstance(answer, dict) else "not an object"
            raise PrometheusError(_line(f"{where} answered {kind} (HTTP {status}) for {promql}: {text}"))
        data = answer.get("data") or {}
        if data.get("resultType") != "vector":
            raise PrometheusError(_line(f"{where} answered a {data.get('resultType')} for {promql}, not a vector"))
        series, when = [], at
        for item in data.get("result") or []:
            moment, value = item["value"]
            when = float(moment)
            series.append((item.get("metric") or {}, float(value)))
        if when is None:  # no series: take the time from here on as "now" on the server's clock
            when = math.nan
        return when, series

    def sample(self, *, require_canary: bool = True) -> Sample:
        """Cumulative counters now. With `require_canary`, no series for the canary version is an
        error (the app's own series exist from its start, at 0; an ingress's appear with its first
        canary request: pass False there).

        The counters and their scrape times come from separate queries at one evaluation time, and
        a scrape stamped before that time can still be stored between them: read as is, a target
        would look scraped again with counters one scrape old (a round that misses a pod's traffic;
        one pod's canary could look like "traffic is not reaching it"). So the scrape times are read
        before and after the counters, and the whole read is repeated until they agree: a scrape
        is stored all at once, so equal times mean the counters are of those scrapes."""
        def by_target(stamps: list[tuple[dict[str, str], float]]) -> dict[tuple[str, str], float]:
            return {(labels.get("job", ""), labels.get("instance", "")): value for labels, value in stamps}

        for _ in range(CONSISTENT_READS):
            when, before = self.query(self.scraped_query)
            if not before:
                raise self._no_series()
            requests = self._requests(when, require_canary)
            latency = self._latency(when) if self.latency_query is not None else {}
            _, after = self.query(self.scraped_query, when)
            if by_target(after) == by_target(before):
                break
        # Still moving after every try (a scrape landing in each read): the times from before the
        # counters are kept, so no target looks scraped again with counters older than that scrape;
        # at worst a round waits one more poll for it.
        return Sample(time=when, requests=requests, latency=latency, scraped=by_target(before))

    def _no_series(self) -> PrometheusError:
        return PrometheusError(_line(f"Prometheus at {self.url} has no series of {self.labels.requests}"
                                     f"{{{self.selector}}}: is the app scraped, and is the selector right?"))

    def _requests(self, at: float | None, require_canary: bool) -> dict[Target, tuple[float, float]]:
        lab = self.labels
        _, series = self.query(self.requests_query, at)
        if not series:
            raise self._no_series()
        requests: dict[Target, tuple[float, float]] = {}
        for labels, value in series:
            target = (labels.get("job", ""), labels.get("instance", ""), labels.get(lab.version, ""))
            total, errors = requests.get(target, (0.0, 0.0))
            error = self._errors.fullmatch(labels.get(lab.code, "")) is not None
            requests[target] = (total + value, errors + (value if error else 0.0))
        if require_canary and not self.has_canary(requests):
            raise self.no_canary_series(requests)
        return requests

    def has_canary(self, requests: dict[Target, tuple[float, float]]) -> bool:
        return any(target[2] == self.canary_version for target in requests)

    def no_canary_series(self, requests: dict[Target, tuple[float, float]],
                         missing_s: float | None = None) -> PrometheusError:
        """No series of the canary's version among `requests` (for `missing_s` seconds, when known)."""
        lab = self.labels
        how_long = "" if missing_s is None else f" for {missing_s:g}s"
        seen = ", ".join(sorted({json.dumps(target[2]) for target in requests}))
        return PrometheusError(_line(
            f"Prometheus at {self.url} has no series of {lab.requests} with {lab.version}="
            f"{json.dumps(self.canary_version)}{how_long} (versions seen: {seen}): is the canary scraped?"))

    def _latency(self, at: float | None) -> dict[Target, tuple[float, float]]:
        lab = self.labels
        _, series = self.query(self.latency_query or "", at)
        if not series:
            raise PrometheusError(_line(
                f"Prometheus at {self.url} has no series of {lab.duration}_bucket{{{self.selector}}}: "
                "judge without latency (Labels(duration=None)) or scrape the histogram"))
        buckets: dict[Target, dict[float, float]] = {}
        version_label = lab.duration_version or lab.version
        for labels, value in series:
            try:
                bound = float(labels.get("le", ""))
            except ValueError:
                continue
            target = (labels.get("job", ""), labels.get("instance", ""), labels.get(version_label, ""))
            per = buckets.setdefault(target, {})
            per[bound] = per.get(bound, 0.0) + value
        limit = self.max_p99 / lab.duration_unit
        latency = {}
        for target, per in buckets.items():
            everything = per.get(math.inf, 0.0)
            # Bucket bounds are floats written by the exporter: allow for their rounding at the limit.
            at_or_above = [bound for bound in per if bound >= limit * (1 - 1e-9) and not math.isinf(bound)]
            if not at_or_above:
                latency[target] = (everything, 0.0)
                continue
            bound = min(at_or_above)
            self.slow_bucket = bound * lab.duration_unit
            latency[target] = (everything, max(0.0, everything - per[bound]))
        return latency



class Rounds:
    """Increments per version in whole scrape rounds (see the module's docstring).

    The constructor takes the baseline sample; `poll()` takes another and returns the increments
    since the last round once every target of the baseline still answering has been scraped
    since, else None. `round_timeout` (seconds of Prometheus time) ends a round that waits longer
    than that anyway.

    With `require_canary`, a round is judged only with the canary's counters in it: a round of the
    stable version's alone would read as "no traffic reaches the canary". A canary whose scrapes fail
    (a scrape that times out, a pod restarting) drops out of the queries at once, since Prometheus
    marks its series stale; `poll()` then returns None and keeps the round open, so the counts of
    that time are judged once the canary is back, and the canary missing for `canary_grace` seconds
    (Prometheus time; `round_timeout` if not given) is an error that names it. The baseline itself
    must have the canary's series (`wait_for_step` waits for them)."""

    def __init__(self, source: PrometheusSource, *, require_canary: bool = True, round_timeout: float = 120.0,
                 base: Sample | None = None, canary_grace: float | None = None):
        self.source = source
        self.require_canary = require_canary
        self.round_timeout = round_timeout
        self.canary_grace = round_timeout if canary_grace is None else canary_grace
        self.base = source.sample(require_canary=require_canary) if base is None else base
        self.rounds = 0
        self.canary_missing_since: float | None = None

    def poll(self) -> dict[str, Counts] | None:
        now = self.source.sample(require_canary=False)
        if self.require_canary and not self.source.has_canary(now.requests):
            if self.canary_missing_since is None:
                self.canary_missing_since = now.time
            missing_s = now.time - self.canary_missing_since
            if missing_s >= self.canary_grace:
                raise self.source.no_canary_series(now.requests, round(missing_s, 1))
            return None
        self.canary_missing_since = None
        behind = [target for target, at in now.scraped.items()
                  if target in self.base.scraped and at <= self.base.scraped[target]]
        if behind and not now.time - self.base.time >= self.round_timeout:
            return None
        increments = now.since(self.base)
        self.base = now.merged_into(self.base)
        self.rounds += 1
        return increments


def scrape_interval(source: PrometheusSource, targets: set[tuple[str, str]]) -> float | None:
    """The longest scrape interval (seconds) among `targets` ((job, instance) pairs: the release's), read
    from /api/v1/targets (each active target's `scrapeInterval`); None when none of them is listed."""
    request = urllib.request.Request(f"{source.url}/api/v1/targets?state=active",
                                     headers={"Accept": "application/json", "User-Agent": "app-update-canary"})
    try:
        with urllib.request.urlopen(request, timeout=source.timeout) as response:
            answer = json.loads(response.read())
        active = answer["data"]["activeTargets"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PrometheusError(_line(f"Prometheus at {source.url} did not list its scrape targets "
                                    f"(/api/v1/targets: {error}): pass --scrape-interval")) from None
    intervals = [parse_duration(target["scrapeInterval"]) for target in active
                 if isinstance(target, dict) and target.get("scrapeInterval")
                 and ((target.get("labels") or {}).get("job"), (target.get("labels") or {}).get("instance")) in targets]
    return max(intervals) if intervals else None


def wait_for_step(source: PrometheusSource, deadline_s: float, *, sleep: Callable[[float], None] = time.sleep,
                  now: Callable[[], float] = time.monotonic, poll: float = 0.5,
                  canary_grace: float | None = None) -> tuple[Rounds, float]:
    """Once a step's weight is live: wait until the canary has series and every target of the release has
    been scraped after this moment (Prometheus's own time, so no clock skew), then start the rounds from
    there: every round judged holds only traffic from after the weight became live. (A canary pod that
    just became ready may not be discovered or scraped yet; a round that began before the change would
    mix the old split in.) Returns the rounds and the seconds waited; past `deadline_s`, a
    PrometheusError saying what was still missing. `canary_grace` goes to the rounds (see Rounds)."""
    started = now()
    live_at: float | None = None
    problem = "no answer yet"
    while True:
        try:
            current = source.sample(require_canary=False)
            if live_at is None:
                live_at = current.time
            has_canary = any(target[2] == source.canary_version for target in current.requests)
            behind = sorted(f"{job}/{instance}" for (job, instance), at in current.scraped.items() if at <= live_at)
            if has_canary and not behind:
                return Rounds(source, base=current, canary_grace=canary_grace), now() - started
            missing = [] if has_canary else [
                f"no series of {source.labels.requests} with {source.labels.version}={json.dumps(source.canary_version)}"
                " (is the canary scraped?)"]
            if behind:
                missing.append(f"{len(behind)} target(s) not scraped since the weight became live ({', '.join(behind[:3])})")
            problem = "; ".join(missing)
        except PrometheusError as error:
            problem = str(error)
        if now() - started >= deadline_s:
            raise PrometheusError(_line(f"Prometheus at {source.url}: after {deadline_s:g}s waiting for the step's "
                                        f"first whole scrape round: {problem}"))
        sleep(poll)


def _line(text: str) -> str:
    return " ".join(text.split())
