"""Release records and promotion with proof: digests from a real registry on loopback and from ECR
(moto), `rollout promote` refusing without proof, before the soak, from a stack not in
promotion.from and after a later abort, `--approve` recorded, `rollout verify`."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from model.config import load
from model.release_record import release_records
from operations import digests, promotion, stacks
from operations.digests import DigestError
from operations.stacks import InputError, OperationError
from rollout.cli import main
from tests.conftest import ROOT
from tests.fake_stack import deployed
from tests.registry_server import RegistryServer, registry_binary

pytestmark = pytest.mark.usefixtures("shared_botocore_data")

RELEASES = "app-update:releases"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
DIGESTS = {"v2": D2, "v3": D3, "v1": "sha256:" + "1" * 64}


def resolve(image, tag):
    return DIGESTS[tag]


def yes(prompt, expected):
    return True


def stack_config(tag="v1", canary_tag="v1", promotion_settings=None, protected=False):
    config = {
        "app-update:cluster": {"mode": "kubeconfig"},
        RELEASES: {
            "web": {"strategy": "RollingUpdate", "tag": tag, "replicas": 3},
            "app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": tag}, "canary": {"tag": canary_tag,
                                                                                               "weight": 0}},
        },
    }
    if promotion_settings is not None:
        config["app-update:promotion"] = promotion_settings
    if protected:
        config["app-update:protected"] = True
    return config


def at(moment):
    return lambda: moment


def by():
    return "alice@laptop"


def verified_dev(tag="v2"):
    dev = deployed("dev", stack_config(tag=tag))
    assert promotion.do_verify(dev, "web", "smoke tests passed", True, yes, now=at(T0), by=by) == 0
    assert promotion.do_verify(dev, "app", "smoke tests passed", True, yes, now=at(T0), by=by) == 0
    return dev


def records(stack):
    return promotion.release_records(stack.outputs())


# ---------------------------------------------------------------------------------------------
# The record as the program exports it
# ---------------------------------------------------------------------------------------------


def test_a_stack_output_records_image_config_and_how_it_got_there():
    dev = deployed("dev", stack_config(tag=f"v2@{D2}"))
    record = records(dev)["web"]
    assert record["image"] == f"arungupta/app-upgrade:v2@{D2}" and record["digest"] == D2
    assert record["config"] == {"strategy": "RollingUpdate", "tags": {"app": f"v2@{D2}"}, "replicas": {"app": 3}}
    assert record["verification"] == {"how": "manual"}  # a plain `pulumi up`


def test_a_record_of_another_image_reads_manual():
    config = load({**{k: json.dumps(v) if isinstance(v, dict) else v for k, v in stack_config(tag="v3").items()},
                   "app-update:verification": json.dumps({"web": {"how": "verify", "image": "arungupta/app-upgrade:v2",
                                                                  "revision": 2}})}, "dev")
    assert release_records(config)["web"]["verification"] == {"how": "manual"}


def test_verify_records_the_check_in_the_stack_output():
    dev = verified_dev()
    record = records(dev)["web"]
    assert record["verification"] == {"how": "verify", "image": "arungupta/app-upgrade:v2", "revision": 2,
                                      "reason": "smoke tests passed", "at": "2026-12-01T09:00:00Z",
                                      "by": "alice@laptop"}
    assert dev.up_messages[1] == "verify web v2: smoke tests passed"
    assert [m for m, _, _ in dev.applied][-1] == "verify app v2: smoke tests passed"


# ---------------------------------------------------------------------------------------------
# Promotion with proof
# ---------------------------------------------------------------------------------------------


def test_promotion_by_digest_with_proof_and_soak():
    dev = verified_dev()
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"], "soak": "1h"}))
    assert promotion.do_promote(dev, staging, None, True, yes, resolve=resolve, now=at(T0 + timedelta(hours=2)),
                                by=by) == 0
    assert staging.config[RELEASES]["web"]["tag"] == f"v2@{D2}"
    assert staging.config[RELEASES]["app"]["stable"]["tag"] == f"v2@{D2}"
    record = records(staging)["web"]
    assert record["image"] == f"arungupta/app-upgrade:v2@{D2}" and record["digest"] == D2
    assert record["verification"] == {
        "how": "promotion", "image": f"arungupta/app-upgrade:v2@{D2}", "revision": 2, "from": "dev",
        "fromRevision": 3, "evidence": "verify on dev in revision 2 at 2026-12-01T09:00:00Z",
        "at": "2026-12-01T11:00:00Z", "by": "alice@laptop"}
    assert staging.up_messages[-1] == f"promote app v2@{D2}, web v2@{D2} from dev"


def promote_main(stand_ins, source, target, *rest):
    """`rollout promote SOURCE TARGET ...` in a copy of the project whose stack files hold what the stand-in
    stacks hold (the command checks its inputs against the local stack files first)."""
    with tempfile.TemporaryDirectory() as project:
        (Path(project) / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        for name in (source, target):
            (Path(project) / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": stand_ins[name].config}))
        return main(["-C", project, "promote", source, target, *rest, "--yes"])


def refusal(dev, staging, monkeypatch, capsys, *argv, now=T0 + timedelta(hours=2)):
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: {"dev": dev, "qa": dev, "staging": staging,
                                                                 "prod": staging}[name])
    monkeypatch.setattr(digests, "resolve", resolve)
    monkeypatch.setattr(promotion, "utc_now", lambda: now)
    before = json.dumps(staging.config, sort_keys=True)
    status = promote_main({"dev": dev, "qa": dev, "staging": staging, "prod": staging}, *argv)
    assert json.dumps(staging.config, sort_keys=True) == before  # nothing written
    assert len(staging.applied) == 1  # no update ran
    return status, capsys.readouterr().err.strip().splitlines()


def test_refused_without_proof(monkeypatch, capsys):
    dev = deployed("dev", stack_config(tag="v2"))  # deployed by hand, never verified
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"]}))
    status, err = refusal(dev, staging, monkeypatch, capsys, "dev", "staging", "--release", "web")
    assert status == 2
    assert err == ["error: release web has no proof of verification on dev (its record says: manual): verify it there "
                   "(a canary, or `python -m rollout verify dev --release web --reason TEXT`), or pass --approve REASON"]


def test_refused_before_the_soak(monkeypatch, capsys):
    dev = verified_dev()
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"], "soak": "1h"}))
    status, err = refusal(dev, staging, monkeypatch, capsys, "dev", "staging", "--release", "web",
                          now=T0 + timedelta(minutes=12))
    assert status == 2
    assert err == ["error: release web has soaked on dev for 12m00s of the 1h00m staging requires "
                   "(app-update:promotion.soak): promote it after 2026-12-01T10:00:00+00:00"]


def test_refused_from_a_stack_not_in_promotion_from(monkeypatch, capsys):
    dev = verified_dev()
    prod = deployed("prod", stack_config(promotion_settings={"from": ["staging"], "soak": "1h"}, protected=True))
    status, err = refusal(dev, prod, monkeypatch, capsys, "dev", "prod")
    assert status == 2
    assert err[0] == "error: 2 problems, nothing was changed:"
    assert err[1:] == ["stack prod takes releases only from staging (app-update:promotion.from), not from dev"] * 2


def test_refused_after_a_later_abort_on_the_source(monkeypatch, capsys):
    dev = verified_dev()
    # A canary of v3 on dev after v2 was verified, aborted: v2 still serves, but dev was not healthy since.
    dev.config[RELEASES]["app"]["canary"] = {"tag": "v3", "weight": 10}
    dev.up(message="canary app v3: weight 10%")
    dev.config[RELEASES]["app"]["canary"] = {"tag": "v3", "weight": 0}
    dev.up(message="canary app v3 aborted at step 1/3 (weight 10%): canary error rate 7.1% over the 1% budget")
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"], "soak": "1h"}))
    status, err = refusal(dev, staging, monkeypatch, capsys, "dev", "staging", "--release", "app")
    assert status == 2
    assert err == ["error: release app was verified on dev in revision 3 but revision 5 came after it ('canary app v3 "
                   "aborted at step 1/3 (weight 10%): canary error rate 7.1% over the 1% budget'): verify it again"]
    # web was not aborted: it still goes
    monkeypatch.setattr(promotion, "utc_now", lambda: T0 + timedelta(hours=2))
    assert promote_main({"dev": dev, "staging": staging}, "dev", "staging", "--release", "web") == 0


def test_a_protected_stack_needs_promotion_from(monkeypatch, capsys):
    dev = verified_dev()
    prod = deployed("prod", stack_config(protected=True))
    status, err = refusal(dev, prod, monkeypatch, capsys, "dev", "prod", "--release", "web")
    assert status == 2
    assert err == ["error: stack prod is protected but its file does not say which stacks it takes releases from: set "
                   "app-update:promotion.from (and promotion.soak)"]


def test_approve_bypasses_the_proof_and_is_recorded(monkeypatch, capsys):
    dev = deployed("dev", stack_config(tag="v2"))
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"], "soak": "1h"}))
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: {"dev": dev, "staging": staging}[name])
    monkeypatch.setattr(digests, "resolve", resolve)
    monkeypatch.setattr(promotion, "actor", by)
    assert promote_main({"dev": dev, "staging": staging}, "dev", "staging", "--release", "web", "--approve",
                        "hotfix INC-42") == 0
    verification = records(staging)["web"]["verification"]
    assert verification["how"] == "approved" and verification["reason"] == "hotfix INC-42"
    assert verification["from"] == "dev" and verification["by"] == "alice@laptop"
    assert staging.up_messages[-1] == f"promote web v2@{D2} from dev (approved: hotfix INC-42)"
    # A promotion is no proof for the next stack: staging must verify it itself.
    prod = deployed("prod", stack_config(promotion_settings={"from": ["staging"]}, protected=True))
    with pytest.raises(InputError, match=r"no proof of verification on staging \(its record says: approved from dev\)"):
        promotion.do_promote(staging, prod, "web", True, yes, resolve=resolve)


def test_a_passed_canary_is_proof(monkeypatch):
    from operations.canary_run import CanaryRun, StepResult

    dev = deployed("dev", stack_config(tag="v2"))
    run = CanaryRun(0, [StepResult(step=1, weight=50, requests=400, canary_requests=200, canary_share=50.0,
                                   error_rate=0.0, canary_error_rate=0.5, p99_ms=20.0, elapsed=60.0, verdict=None)])
    promotion.record_canary(dev, "app", "v2", run, now=at(T0), by=by)
    verification = records(dev)["app"]["verification"]
    assert verification["how"] == "canary" and verification["verdict"] == "passed"
    assert verification["evidence"] == "1 steps to 50%, 400 requests, canary error rate at most 0.5%"
    staging = deployed("staging", stack_config(promotion_settings={"from": ["dev"]}))
    assert promotion.do_promote(dev, staging, "app", True, yes, resolve=resolve, now=at(T0)) == 0
    # an aborted run records nothing (its abort is in the history)
    promotion.record_canary(dev, "web", "v3", CanaryRun(1, [], "aborted"), now=at(T0), by=by)
    assert records(dev)["web"]["verification"] == {"how": "manual"}


def test_unprotected_stack_without_promotion_settings_takes_digests_without_proof():
    dev = deployed("dev", stack_config(tag="v2"))
    qa = deployed("qa", stack_config())
    assert promotion.do_promote(dev, qa, "web", True, yes, resolve=resolve) == 0
    assert qa.config[RELEASES]["web"]["tag"] == f"v2@{D2}"


def test_no_digest_without_allow_tag_changes_nothing():
    dev = deployed("dev", stack_config(tag="v2"))
    qa = deployed("qa", stack_config())

    def unreachable(image, tag):
        raise DigestError(f"{image}:{tag}: cannot reach the registry; pass --allow-tag to promote by tag anyway")

    with pytest.raises(DigestError, match="--allow-tag"):
        promotion.do_promote(dev, qa, "web", True, yes, resolve=unreachable)
    assert qa.config[RELEASES]["web"]["tag"] == "v1"
    assert promotion.do_promote(dev, qa, "web", True, yes, resolve=unreachable, allow_tag=True) == 0
    assert qa.config[RELEASES]["web"]["tag"] == "v2"


def test_bad_config_names_the_key():
    problems = None
    try:
        load({"app-update:releases": json.dumps({"web": {"strategy": "RollingUpdate", "tag": "v1"}}),
              "app-update:promotion": json.dumps({"from": [], "soak": "an hour"})}, "prod")
    except Exception as error:  # noqa: BLE001
        problems = error.problems
    assert problems == ["app-update:promotion.from: must be a non-empty list of stack names (got a list)",
                        "app-update:promotion.soak: must be a duration like 1h, 30m, 1h30m or 2d (got 'an hour')"]


# ---------------------------------------------------------------------------------------------
# Digests: a real registry on loopback, ECR under moto
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    binary = registry_binary()
    if binary is None:
        pytest.skip("Debian's docker-registry is not installed (make docker-registry)")
    server = RegistryServer(binary).start()
    yield server
    server.close()


def test_digest_from_a_real_registry(registry):
    pushed = registry.push("team/app", "v2", "version two")
    assert digests.resolve(f"{registry.host}/team/app", "v2") == pushed
    # pushed over: the tag now names another digest, which is why promotion pins digests
    again = registry.push("team/app", "v2", "version two, rebuilt")
    assert again != pushed and digests.resolve(f"{registry.host}/team/app", "v2") == again
    with pytest.raises(DigestError, match=r"team/app:v9: the registry has no such tag \(404\)"):
        digests.resolve(f"{registry.host}/team/app", "v9")
    assert digests.resolve(f"{registry.host}/team/app", f"v2@{D2}") == D2  # already pinned: no request


def test_promote_pins_the_registry_digest(registry):
    pushed = registry.push("team/web", "v2", "web two")
    image = f"{registry.host}/team/web"
    dev = deployed("dev", {"app-update:cluster": {"mode": "kubeconfig"},
                           RELEASES: {"web": {"strategy": "RollingUpdate", "image": image, "tag": "v2"}}})
    qa = deployed("qa", {"app-update:cluster": {"mode": "kubeconfig"},
                         RELEASES: {"web": {"strategy": "RollingUpdate", "image": image, "tag": "v1"}}})
    assert promotion.do_promote(dev, qa, None, True, yes) == 0
    assert qa.config[RELEASES]["web"]["tag"] == f"v2@{pushed}"


def test_an_unreachable_registry_is_one_clear_line():
    port = __import__("tests.prometheus_server", fromlist=["free_port"]).free_port()
    with pytest.raises(DigestError) as error:
        digests.resolve(f"127.0.0.1:{port}/team/app", "v2", timeout=2)
    assert str(error.value).startswith(f"127.0.0.1:{port}/team/app:v2: cannot reach the registry at http://127.0.0.1:")
    assert str(error.value).endswith("pass --allow-tag to promote by tag anyway") and "\n" not in str(error.value)


@pytest.mark.parametrize("image, expected", [
    ("arungupta/app-upgrade", ("registry-1.docker.io", "arungupta/app-upgrade")),
    ("nginx", ("registry-1.docker.io", "library/nginx")),
    ("docker.io/library/nginx", ("registry-1.docker.io", "library/nginx")),
    ("localhost:5000/app", ("localhost:5000", "app")),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app", ("123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                                                               "team/app")),
])
def test_references_normalise_as_docker_does(image, expected):
    assert digests.split_reference(image) == expected


def test_digest_from_ecr(monkeypatch, tmp_path):
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"
    with mock_aws():
        ecr = boto3.client("ecr", region_name="eu-west-1")
        ecr.create_repository(repositoryName="team/app")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"digest": "sha256:" + "c" * 64, "size": 1,
                                          "mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": []})
        ecr.put_image(repositoryName="team/app", imageManifest=manifest, imageTag="v2")
        expected = ecr.describe_images(repositoryName="team/app")["imageDetails"][0]["imageDigest"]
        assert digests.resolve(image, "v2") == expected
        with pytest.raises(DigestError, match=r"team/app:v9: no such image in ECR \(ImageNotFoundException\)"):
            digests.resolve(image, "v9")
        with pytest.raises(DigestError, match="RepositoryNotFoundException"):
            digests.resolve("123456789012.dkr.ecr.eu-west-1.amazonaws.com/other", "v2")


def test_verify_refuses_a_release_that_does_not_run_what_its_config_says():
    dev = deployed("dev", stack_config(tag="v2"))
    dev.config[RELEASES]["web"]["tag"] = "v3"  # edited, not deployed
    with pytest.raises(OperationError, match="does not run what its config says"):
        promotion.do_verify(dev, "web", "looked fine", True, yes)


# ---------------------------------------------------------------------------------------------
# The policy pack: protected stacks take releases through promote
# ---------------------------------------------------------------------------------------------


def _pack_resources(config):
    from policy import rules
    from tests.conftest import ok_run

    run = ok_run(config[RELEASES], stack="prod", protected=True)
    return [rules.Resource(r.type, r.name, r.inputs) for r in run.resources if getattr(r, "custom", True)]


def test_policy_protected_stack_serves_what_its_records_say():
    from policy import rules

    pinned = f"arungupta/app-upgrade:v2@{D2}"
    config = stack_config(tag=f"v2@{D2}")
    resources = _pack_resources(config)
    engine_config = {"app-update:protected": "true", "app-update:promotion": json.dumps({"from": ["staging"]}),
                     "app-update:verification": json.dumps({"web": {"how": "promotion", "image": pinned}})}
    environ = {"PULUMI_CONFIG": json.dumps(engine_config)}
    assert rules.promotion_proof(resources, environ) == []
    # tag changed by hand: the stable Deployment no longer serves the recorded image
    by_hand = _pack_resources(stack_config(tag="v3"))
    found = rules.promotion_proof(by_hand, environ)
    assert [(r.name, m) for r, m in found] == [("web-deployment", f"serves arungupta/app-upgrade:v3, but release web's record says "
                                                       f"{pinned} (promotion): change what a protected stack runs with "
                                                       "`rollout promote` or a canary of a promoted release, not by hand")]
    # no promotion.from
    environ = {"PULUMI_CONFIG": json.dumps({"app-update:protected": "true"})}
    assert [m for _, m in rules.promotion_proof(resources, environ)] == [
        "a protected stack names the stacks it takes releases from: set app-update:promotion.from"]
    assert rules.promotion_proof(resources, {}) == []  # offline: no stack config to read


def test_policy_allows_a_canary_being_promoted():
    from policy import rules

    pinned = f"arungupta/app-upgrade:v2@{D2}"
    # the canary run's promotion step: stable takes the canary's image before the run records its verdict
    config = stack_config(tag=f"v2@{D2}", canary_tag=f"v3@{D3}")
    config[RELEASES]["app"]["stable"]["tag"] = f"v3@{D3}"
    environ = {"PULUMI_CONFIG": json.dumps({"app-update:promotion": json.dumps({"from": ["staging"]}),
                                            "app-update:verification": json.dumps(
                                                {"app": {"how": "promotion", "image": pinned}})})}
    assert rules.promotion_proof(_pack_resources(config), environ) == []


def test_approve_never_bypasses_promotion_from():
    dev = deployed("dev", stack_config(tag="v2"))
    prod = deployed("prod", stack_config(promotion_settings={"from": ["staging"]}, protected=True))
    with pytest.raises(InputError, match=r"^stack prod takes releases only from staging"):
        promotion.do_promote(dev, prod, "web", True, yes, resolve=resolve, approve="trust me")
    assert prod.config[RELEASES]["web"]["tag"] == "v1"


def test_a_reason_the_cli_would_store_as_a_number_keeps_the_config_valid():
    dev = deployed("dev", stack_config(tag="v2"))
    assert promotion.do_verify(dev, "web", "42", True, yes, now=at(T0), by=by) == 0
    assert records(dev)["web"]["verification"]["reason"] == "42"


def test_a_canary_verdict_that_cannot_be_recorded_is_a_warning(capsys):
    from operations.canary_run import CanaryRun

    dev = deployed("dev", stack_config(tag="v2"))
    dev.script = ["fail"]
    promotion.record_canary(dev, "app", "v2", CanaryRun(0, []), now=at(T0), by=by)
    err = capsys.readouterr().err
    assert err.startswith("warning: the canary passed but its verdict was not recorded (pulumi: ")
    assert 'python -m rollout verify dev --release app --reason "canary v2 passed"' in err


def test_a_bearer_challenge_is_answered_with_an_anonymous_token(monkeypatch):
    """Docker Hub's flow (401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, then a token
    from the realm) against a loopback stand-in: the real Hub is not reachable here."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 (the http.server API)
            seen.append(("GET", self.path, self.headers.get("Authorization")))
            if self.path.startswith("/token?"):
                body = json.dumps({"token": "t0ken"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(404)
            self.end_headers()

        def do_HEAD(self):  # noqa: N802
            seen.append(("HEAD", self.path, self.headers.get("Authorization"), self.headers.get("Accept")))
            if self.headers.get("Authorization") != "Bearer t0ken":
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                                                     'service="registry.test",scope="repository:team/app:pull"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Docker-Content-Digest", D3)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert digests.resolve(f"127.0.0.1:{port}/team/app", "v3") == D3
    finally:
        server.shutdown()
        server.server_close()
    assert [s[:3] for s in seen] == [
        ("HEAD", "/v2/team/app/manifests/v3", None),
        ("GET", "/token?service=registry.test&scope=repository%3Ateam%2Fapp%3Apull", None),
        ("HEAD", "/v2/team/app/manifests/v3", "Bearer t0ken")]
    assert "application/vnd.oci.image.index.v1+json" in seen[0][3]


class _ByTag(dict):
    """The running apps by the version they report: a tag pinned by digest runs its tag's app."""

    def __getitem__(self, tag):
        return super().__getitem__(tag.split("@", 1)[0])


@pytest.fixture(scope="module")
def apps():
    """The sample app of the stable (v1) and the canary's (v2) tag, as real processes."""
    from tests.apps import running

    with running(v1={}, v2={}) as started:
        yield started


def test_a_canary_of_a_pinned_tag_is_judged_by_the_version_the_app_reports(apps, proxy):
    from operations.canary_run import run_canary
    from tests.clock import VirtualClock
    from tests.test_canary import LoadBalancedStack, options

    stack = LoadBalancedStack(proxy, _ByTag(apps))
    # Two steps, each judged on the share of the answers v2 gives: a canary whose answers did not count as its own
    # would read 0% and fail at the first.
    run = run_canary(stack, options(f"v2@{D2}", url=proxy.url, steps=[25, 100]), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    assert all(abs(step.canary_share - step.weight) <= 2 for step in run.steps)  # v2's answers count as the canary
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == f"v2@{D2}"


def test_pods_of_a_pinned_tag_are_labelled_with_the_tag():
    from tests.conftest import ok_run

    run = ok_run({"web": {"strategy": "RollingUpdate", "tag": f"v2@{D2}"}})
    deployment = next(r for r in run.resources if r.type == "kubernetes:apps/v1:Deployment")
    template = deployment.inputs["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/version"] == "v2"
    assert template["spec"]["containers"][0]["image"] == f"arungupta/app-upgrade:v2@{D2}"
