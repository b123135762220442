"""What `rollout canary` checks before it judges a step, and what it waits for (operations/canary_run.py
calls these; the loop itself stays there).

Before any write (`step_shares`, `metrics_source`): the share each step is judged at, the Prometheus
source scoped to the release, and the scrape interval. During a step, before its evidence counts
(`wait_until_live`, `metrics_rounds`): the weight live where it takes effect (operations/live_weight.py),
then, from Prometheus, the canary's series and a whole scrape round after that.

Refusals are the input's fault (stacks.InputError: exit 2) and say what would work; waits that run
out raise OperationError, which the loop turns into its abort path with the reason.
"""

from __future__ import annotations

from typing import Any, Protocol

from model import canary_math
from model.config import Release, StackConfig
from model.judge import MIN_CANARY_ANSWERS
from operations import stacks
from operations.live_weight import LiveReader, LiveWeight, WeightNotLive, reader_for, region_of_hostname
from operations.prometheus import APP, PrometheusError, PrometheusSource, Rounds, release_selector, scrape_interval
from operations.prometheus import wait_for_step as wait_for_scrape_round

# Requests per independent trial the share tests assume of the users' traffic from Prometheus: keep-alive
# clients send runs of requests on one connection to one pod. 20 covers connections of about 10 requests
# on average (geometric lengths: D = 2L - 1; bench/bench_canary_abort.py, table 5); pass
# --share-design-effect for your clients. Probes open a connection per request: 1.
METRICS_DESIGN_EFFECT = 20.0
SCRAPES_PER_INTERVAL = 3  # an --interval shorter than this many scrape intervals is refused
METRICS_WAIT_SLACK = 30.0  # seconds beyond 3 scrape intervals a step waits for its first whole round


class NotLive(stacks.OperationError):
    """A step's evidence could not start in time: its weight never became live, or Prometheus never
    showed a whole round after it. The loop aborts with this message as the reason."""


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


def step_shares(release: Release, steps: list[int]) -> tuple[list[float], list[str]]:
    """The share each step is judged at and the warnings to print; refuses (InputError) a step no
    split of the release's pods can serve (model.canary_math.step_shares)."""
    shares, warnings, refusals = canary_math.step_shares(release.traffic, release.replicas, steps)
    if refusals:
        raise stacks.InputError(f"release {release.name} (traffic: {release.traffic}, {release.replicas} replicas): "
                                + "; ".join(refusals))
    return shares, warnings


def min_canary_answers(options: Any, share: float) -> int:
    """The canary answers a step needs: --min-canary-answers, else MIN_CANARY_ANSWERS, or half what the
    probes can expect from the canary at `share` when that is fewer (judging from probes alone)."""
    if options.min_canary_answers is not None:
        return int(options.min_canary_answers)
    if options.metrics:
        return MIN_CANARY_ANSWERS
    return min(MIN_CANARY_ANSWERS, int(options.rate * options.interval * share / 100 / 2))


def short_step_warnings(options: Any, shares: list[float]) -> list[str]:
    """Steps too short (from probes alone) for MIN_CANARY_ANSWERS: a canary nobody reaches could pass them."""
    if options.metrics or options.min_canary_answers is not None:
        return []
    return [f"step {weight}% expects {options.rate * options.interval * share / 100:.1f} canary answers from the "
            f"probes ({options.rate:g}/s for {options.interval:g}s at {share:g}%), fewer than twice the "
            f"{MIN_CANARY_ANSWERS} a step should need: raise --rate or --interval"
            for weight, share in zip(options.steps, shares, strict=True)
            if options.rate * options.interval * share / 100 < 2 * MIN_CANARY_ANSWERS]


def _output(stack: Any, name: str) -> Any:
    value = stack.outputs().get(name)
    return getattr(value, "value", value)


def metrics_source(stack: Any, config: StackConfig, release: Release,
                   options: Any) -> tuple[PrometheusSource, float | None]:
    """The Prometheus source for the release (every query scoped to its series) and the scrape interval;
    refuses an --interval shorter than SCRAPES_PER_INTERVAL scrape intervals. An unreachable Prometheus
    gives no interval here: the first step reads it again and, failing, takes the abort path."""
    namespace = _output(stack, "namespace") or config.namespace
    template = options.metrics_selector if options.metrics_selector is not None else APP.release
    try:
        selector = release_selector(template, namespace=str(namespace), release=release.name,
                                    service=release.service_name)
        version = options.tag.split("@", 1)[0]  # what the app reports: a tag pinned by digest reports its tag
        source = PrometheusSource(options.metrics, version, options.max_p99, selector=selector)
    except PrometheusError as error:
        raise stacks.InputError(str(error)) from None
    interval = options.scrape_interval
    if interval is None:
        try:
            interval = read_scrape_interval(source)
        except stacks.OperationError:
            return source, None
    check_interval(options.interval, interval)
    return source, interval


def read_scrape_interval(source: PrometheusSource) -> float:
    try:
        sample = source.sample(require_canary=False)
        interval = scrape_interval(source, set(sample.scraped))
    except PrometheusError as error:
        raise stacks.OperationError(f"{error} (the scrape interval is read from the release's targets; "
                                    "or pass --scrape-interval)") from None
    if interval is None:
        raise stacks.OperationError(f"Prometheus at {source.url} lists none of the release's targets "
                                    f"({source.selector}): pass --scrape-interval")
    return interval


def check_interval(step_interval: float, interval: float) -> None:
    if step_interval < SCRAPES_PER_INTERVAL * interval:
        raise stacks.InputError(
            f"--interval {step_interval:g}s is shorter than {SCRAPES_PER_INTERVAL} scrape intervals of Prometheus "
            f"({interval:g}s each): a step would judge at most a round or two; use --interval "
            f"{SCRAPES_PER_INTERVAL * interval:g}s or more")


def metrics_rounds(source: PrometheusSource, interval: float | None, options: Any, say: Any) -> Rounds:
    """Wait (reported, with a deadline) for the canary's series and one whole scrape round after the
    weight became live; the rounds judged start there."""
    if interval is None:  # Prometheus was unreachable before the run: an error here takes the abort path
        interval = read_scrape_interval(source)
        check_interval(options.interval, interval)
    deadline = options.metrics_wait if options.metrics_wait is not None else (
        SCRAPES_PER_INTERVAL * interval + METRICS_WAIT_SLACK)
    say(f"waiting up to {deadline:g}s for Prometheus to scrape the canary and a whole round after the weight "
        f"(scrape interval {interval:g}s)")
    try:
        # The canary missing from a scrape or two (a failed scrape marks its series stale) holds the round
        # open; missing for three scrape intervals, it is an error and the step takes the abort path.
        rounds, waited = wait_for_scrape_round(source, deadline, canary_grace=SCRAPES_PER_INTERVAL * interval)
    except PrometheusError as error:
        raise NotLive(str(error)) from None
    say(f"Prometheus has a whole round after the weight ({waited:.1f}s): judging from here")
    return rounds


def live_reader(stack: Any, config: StackConfig, release: Release) -> LiveReader:
    """The release's live weight reader, with clients from the stack's kubeconfig or AWS region.

    nlb and alb are read through the ELBv2 API of the load balancer's region: the one its DNS name
    says (the release's `address` output), else the stack's `aws:region`, else boto3's own (AWS_REGION,
    the profile). Without any, the check cannot run: refused (InputError, exit 2) before anything is
    written, naming `aws:region` and `--verify-timeout 0`."""
    outputs = (_output(stack, "releases") or {}).get(release.name) or {}
    region = config.region
    if release.traffic in ("nlb", "alb"):
        region = region_of_hostname(outputs.get("address")) or region or _default_region()
        if not region:
            raise stacks.InputError(
                f"release {release.name} (traffic: {release.traffic}): the live-weight check reads the load balancer "
                f"through the AWS API, and no AWS region is known (none in its address "
                f"{outputs.get('address') or '(none yet)'}, no aws:region in stack {stack.name}, none in the "
                "environment): set aws:region in the stack file, or pass --verify-timeout 0 to skip the check")
    try:
        return reader_for(release, namespace=str(_output(stack, "namespace") or config.namespace),
                          outputs=outputs, kubeconfig=_output(stack, "kubeconfig"), context=config.cluster.context,
                          region=region)
    except Exception as error:  # noqa: BLE001 (a missing kubeconfig, region or credentials: one line)
        raise stacks.OperationError(f"cannot read the live weight of release {release.name} (traffic: "
                                    f"{release.traffic}): {stacks.error_line(error)}; --verify-timeout 0 skips "
                                    "the check") from None


def _default_region() -> str | None:
    """boto3's region from the environment or the profile (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)."""
    import boto3

    try:
        return boto3.session.Session().region_name
    except Exception:  # noqa: BLE001 (a broken profile: no region)
        return None


def wait_until_live(reader: LiveReader, weight: int, share: float, timeout: float, clock: Clock, say: Any,
                    poll: float = 2.0) -> LiveWeight:
    """Poll the live weight until it is confirmed; past `timeout`, OperationError with the last reading."""
    started = clock.now()
    while True:
        try:
            live = reader.read(weight, share)
        except WeightNotLive as error:
            live = LiveWeight(False, None, str(error))
        if live.confirmed:
            say(f"live: {live.detail}")
            return live
        if clock.now() - started >= timeout:
            raise NotLive(f"the weight {weight}% did not become live within {timeout:g}s "
                                        f"(--verify-timeout): {live.detail}")
        clock.sleep(poll)
