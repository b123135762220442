"""A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes whose pods run and get ready), from the binaries `make controlplane` builds.

The binaries live in a cache directory outside the checkout keyed like controlplane/build.sh keys it (the hash of
the Go module's go.mod, go.sum and main.go): `cache_dir()` finds them. `start()` makes a fresh PKI (a CA, the API
server's serving certificate, the service-account signing key), picks free loopback ports, starts every process
with its log in the work directory, and waits, through the API, for three kwok nodes in three zones to be Ready,
the controller manager to have made the `default` ServiceAccount and the API server to refuse Events (below).
`stop()` ends every process it started (SIGTERM, then SIGKILL); each child also gets SIGKILL from the kernel if the
test process dies first (PR_SET_PDEATHSIG), so nothing outlives a killed run.

The tests' CPU is the control plane's work per request, and most requests are the controllers' answers to pods
coming and going, so it runs lean where no test looks: only the controllers the tests need (CONTROLLERS), a
Service's EndpointSlices written at most once a second, Events refused at admission (`refuse_events`: nothing
reads them, and they were a sixth of all writes), no API Priority and Fairness (one client: nothing to share out),
the Go components' garbage collector held off until near a heap limit (GO_HEAP_LIMITS). Tests that read only what
the API server keeps of the objects they apply run in namespaces that refuse pods (kube.fresh_namespace).
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "controlplane"
# Three fake nodes, one per zone, as on a three-AZ EKS node group.
ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
NODE_ANNOTATION = "kwok.x-k8s.io/node"
# kwok's own annotation (its `pod/general` stages read it): how long a pod takes to become Ready, as a Go duration.
# The fast stages used here make pods Ready at once unless a pod carries it.
READY_DELAY_ANNOTATION = "pod-ready.stage.kwok.x-k8s.io/delay"
# A pod carrying READY_PACED_ANNOTATION stays not Ready until a test gives it READY_AT_ANNOTATION, the moment it
# becomes Ready (RFC 3339, kwok's `delay.durationFrom` reads a time as "until then"): a test can then make pods
# Ready one at a time, in an order and at intervals of its choosing.
READY_PACED_ANNOTATION = "test.app-update/ready-paced"
READY_AT_ANNOTATION = "test.app-update/ready-at"
# The controllers the tests need, and those that keep a namespace usable (ServiceAccounts, the root CA ConfigMap,
# cleanup) and nodes schedulable (node-lifecycle lifts the not-ready taint the API server's TaintNodesByCondition
# admission puts on a new Node): not all of them (`*`), which would spend the shared cores on node IPAM, volumes,
# CSRs and the like. Not the legacy Endpoints controller either: the tests read EndpointSlices, and its Endpoints
# would be a write per pod change that nothing reads.
CONTROLLERS = ("deployment-controller", "replicaset-controller", "endpointslice-controller",
               "disruption-controller", "serviceaccount-controller",
               "node-lifecycle-controller",
               "namespace-controller", "garbage-collector-controller", "root-ca-certificate-publisher-controller",
               "pod-garbage-collector-controller",
               # A ResourceQuota's status (hard, used): its admission refuses every pod until the controller fills it.
               "resourcequota-controller")
# The ValidatingAdmissionPolicy (and its binding) that refuses Events: ControlPlane.refuse_events.
REFUSE_EVENTS = "app-update-test-no-events"
START_TIMEOUT = 90.0  # seconds; a start-up takes about 10 s on an idle 2-core machine


class ControlPlaneUnavailable(Exception):
    """The control plane cannot run here (binaries not built); the message says why in one line."""


class ControlPlaneFailed(Exception):
    """A component did not start: the message carries the tail of its log."""


def cache_dir() -> Path:
    """Where controlplane/build.sh puts the binaries: the same key from the same files."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((MODULE / name).read_bytes())
    version = next(line.split()[2] for line in (MODULE / "go.mod").read_text().splitlines()
                   if line.startswith("require k8s.io/kubernetes "))
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "app-update" / f"controlplane-{version}-{digest.hexdigest()[:12]}"


def crd_dir() -> Path:
    """Where controlplane/build.sh copies the upstream CRDs of controlplane/crds/go.mod's pinned modules."""
    digest = hashlib.sha256((MODULE / "crds" / "go.mod").read_bytes() + (MODULE / "crds" / "go.sum").read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "app-update" / f"crds-{digest.hexdigest()[:12]}"


def unavailable_reason() -> str | None:
    """One line saying why the control plane cannot start here, or None when it can."""
    directory = cache_dir()
    missing = [name for name in ("controlplane", "kwok", "kwok-stages") if not (directory / name).exists()]
    if not crd_dir().is_dir():
        missing.append(str(crd_dir()))
    if not missing:
        return None
    toolchain = "" if shutil.which("go") else " (and no Go toolchain on PATH: https://go.dev/dl/)"
    return (f"the test control plane is not built ({', '.join(missing)} missing in {directory}): "
            f"run `make controlplane`{toolchain}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# PKI: EC P-256 keys (fast to make), certificates valid for a day
# ---------------------------------------------------------------------------------------------


def _pki(directory: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, Any] | None,
             ca: bool, sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name)
                   .issuer_name(issuer[0].subject if issuer else name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                            critical=True)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                            critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("app-update-test-ca", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = cert("kube-apiserver", server_key, (ca_cert, ca_key), ca=False, sans=[
        x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"), x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.96.0.1"))])
    sa_key = ec.generate_private_key(ec.SECP256R1())

    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM), "ca.key": key_pem(ca_key),
        "apiserver.crt": server_cert.public_bytes(serialization.Encoding.PEM), "apiserver.key": key_pem(server_key),
        "sa.key": key_pem(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    workdir: Path
    binaries: Path = field(default_factory=cache_dir)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[_Process] = field(default_factory=list)
    server: str = ""
    kubeconfig: Path | None = None
    ca_file: Path | None = None

    def _spawn(self, name: str, argv: list[str]) -> _Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, preexec_fn=_die_with_parent, env=go_environment(name))
        process = _Process(name, popen, log)
        self.processes.append(process)
        return process

    def _check_alive(self) -> None:
        for process in self.processes:
            code = process.popen.poll()
            if code is not None:
                raise ControlPlaneFailed(f"{process.name} exited with status {code}; its log ends:\n{process.tail()}")

    def _wait(self, what: str, ready, deadline: float) -> None:
        """Poll `ready` (a cheap health check) until true; a component that exits fails at once."""
        delay = 0.05
        while True:
            self._check_alive()
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneFailed(f"timed out waiting for {what}; logs in {self.workdir}\n"
                                         + "\n".join(f"--- {p.name}:\n{p.tail(5)}" for p in self.processes))
            time.sleep(delay)  # a health poll's back-off, not a wait for an outcome
            delay = min(delay * 1.5, 0.5)

    def start(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pki = _pki(self.workdir)
        self.ca_file = pki["ca.crt"]
        binary = str(self.binaries / "controlplane")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            binary, "etcd", "--name=test", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn", "--listen-metrics-urls="])
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},app-update-admin,app-update-admin,"system:masters"\n')
        tokens.chmod(0o600)
        self.server = f"https://127.0.0.1:{api_port}"
        # The API server retries etcd until it answers: both start at once.
        self._spawn("kube-apiserver", [
            binary, "apiserver", f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
            f"--secure-port={api_port}", "--advertise-address=10.0.0.1", "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki['apiserver.crt']}", f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}", f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['sa.pub']}", f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-cluster-ip-range=10.96.0.0/16", f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--profiling=false", "-v=1",
            # One client here, nothing to queue fairly: no flow-control bookkeeping per request, no bootstrap
            # FlowSchemas and PriorityLevels kept in step (about a tenth of the API server's CPU).
            "--enable-priority-and-fairness=false"])
        self._wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), deadline)
        context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        self._wait("kube-apiserver /readyz", lambda: _http_ok(f"{self.server}/readyz", context, self.token),
                   deadline)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig(self.server, pki["ca.crt"], self.token)))
        self.kubeconfig.chmod(0o600)
        self.refuse_events()
        kcm_port, scheduler_port, kwok_port = free_port(), free_port(), free_port()
        self._spawn("kube-controller-manager", [
            binary, "controller-manager", f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}", f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}", "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}", "--concurrent-deployment-syncs=5",
            # A Service's EndpointSlices written once per second at most, not once per pod change: the tests wait
            # for what the slices hold, never for how soon.
            "--endpointslice-updates-batch-period=1s",
            # Its client's default 20 requests/s throttles tests that run several rollouts at once.
            "--kube-api-qps=500", "--kube-api-burst=1000", "-v=1"])
        self._spawn("kube-scheduler", [
            binary, "scheduler", f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={scheduler_port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}", "--kube-api-qps=500", "--kube-api-burst=1000", "-v=1"])
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text(yaml.safe_dump_all(kwok_stages(self.binaries / "kwok-stages"), sort_keys=False))
        self._spawn("kwok", [
            str(self.binaries / "kwok"), f"--kubeconfig={self.kubeconfig}", f"--config={stages}",
            "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{kwok_port}", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.10", "-v=WARN"])
        self._wait_cluster(deadline)

    def _wait_cluster(self, deadline: float) -> None:
        from kubernetes import client

        from tests.cluster.kube import WatchTimeout, watch_until

        api_client = self.api_client()
        api = client.CoreV1Api(api_client)
        try:
            for index, zone in enumerate(ZONES):
                api.create_node(fake_node(f"kwok-node-{index}", zone))
            # Nodes Ready (kwok), then the `default` ServiceAccount (the controller manager): watched, not polled.
            watch_until(api.list_node, lambda nodes: sum(map(_node_schedulable, nodes.values())) == len(ZONES),
                        "three Ready, untainted kwok nodes", timeout=max(1, int(deadline - time.monotonic())))
            watch_until(api.list_namespaced_service_account, lambda accounts: "default" in accounts,
                        "the controller manager's default ServiceAccount",
                        timeout=max(1, int(deadline - time.monotonic())), namespace="default")
            self._wait("the policy refusing Events in force", lambda: self._events_refused(api), deadline)
        except WatchTimeout as error:
            self._check_alive()
            raise ControlPlaneFailed(f"{error}; logs in {self.workdir}") from None
        finally:
            api_client.close()

    def refuse_events(self) -> None:
        """A ValidatingAdmissionPolicy that refuses every Event (both APIs): the controllers and the scheduler
        record one or more per pod they create, scale, place or delete, and no test reads them. A refused Event is
        dropped by its recorder (no retry; it logs "Server rejected event") and never reaches storage, watches or
        the garbage collector's graph. A test that reads Events must lift this (delete the binding). The API
        server loads policies asynchronously: `_wait_cluster` waits until it enforces this one."""
        from kubernetes import client

        api_client = self.api_client()
        try:
            admission = client.AdmissionregistrationV1Api(api_client)
            admission.create_validating_admission_policy({
                "metadata": {"name": REFUSE_EVENTS}, "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{
                        "apiGroups": ["", "events.k8s.io"], "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"], "resources": ["events"]}]},
                    "validations": [{"expression": "false",
                                     "message": "the test control plane keeps no Events (tests/cluster/controlplane.py)"}]}})
            admission.create_validating_admission_policy_binding({
                "metadata": {"name": REFUSE_EVENTS},
                "spec": {"policyName": REFUSE_EVENTS, "validationActions": ["Deny"]}})
        finally:
            api_client.close()

    @staticmethod
    def _events_refused(core) -> bool:
        """Whether the API server refuses an Event now (a dry run: nothing is kept either way)."""
        from kubernetes.client.exceptions import ApiException

        try:
            core.create_namespaced_event("default", {
                "metadata": {"name": "probe"}, "involvedObject": {"kind": "Namespace", "name": "default"},
                "reason": "Probe", "message": "is the policy in force?"}, dry_run="All")
        except ApiException as error:
            if REFUSE_EVENTS not in (error.body or ""):
                raise
            return True
        return False

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def stop(self) -> None:
        """SIGTERM to every process, SIGKILL to any still there after a short grace: nothing here keeps state."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        grace_ends = time.monotonic() + 1  # the API server alone would take ~10 s (graceful shutdown)
        for process in self.processes:
            try:
                process.popen.wait(timeout=max(0.1, grace_ends - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self.processes.clear()


# Each component's heap before its garbage collector runs (GOGC=off, GOMEMLIMIT): the collector's marking
# and sweeping is about a third of the API server's CPU at the default GOGC=100, CPU the tests' two cores
# share; a test control plane lives a minute, so memory is the cheaper thing to spend (about 2.5 GiB at most).
GO_HEAP_LIMITS = {"etcd": "512MiB", "kube-apiserver": "1GiB", "kube-controller-manager": "384MiB",
                  "kube-scheduler": "256MiB", "kwok": "256MiB"}


def go_environment(name: str) -> dict[str, str]:
    """The environment a component starts with: this process's, with GC settings of its own (GO_HEAP_LIMITS)."""
    return {**os.environ, "GOGC": "off", "GOMEMLIMIT": GO_HEAP_LIMITS[name]}


def _http_ok(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return response.status == 200


def _node_ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def _node_schedulable(node: dict[str, Any]) -> bool:
    return _node_ready(node) and not node["spec"].get("taints")


def kubeconfig(server: str, ca_file: Path, token: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "app-update-test",
            "clusters": [{"name": "app-update-test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
            "users": [{"name": "app-update-admin", "user": {"token": token}}],
            "contexts": [{"name": "app-update-test", "context": {"cluster": "app-update-test", "user": "app-update-admin"}}]}


def fake_node(name: str, zone: str) -> dict[str, Any]:
    """A Node kwok manages (its annotation), in one zone, with room for every test's pods: the tests' namespaces
    stay until the control plane stops, so all their pods add up."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok",
                                    "topology.kubernetes.io/zone": zone,
                                    "topology.kubernetes.io/region": zone[:-1]}},
            "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
                       "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"}}}


def kwok_stages(directory: Path) -> list[dict[str, Any]]:
    """kwok's own Stage definitions (its module's kustomize/stage): nodes `fast` (made Ready at once) and
    `heartbeat`, pods `fast` (Ready at once, deleted at once). One change to the `pod-ready` stage: its delay is
    READY_AT_ANNOTATION's time if the pod has one, else READY_DELAY_ANNOTATION's duration (which kwok's `general`
    stages read), and a pod with READY_PACED_ANNOTATION waits for READY_AT_ANNOTATION; so a test can slow
    readiness down per pod, or pace it, and watch a rolling update step by step. A pod with none of them is Ready
    at once, as in `fast`."""
    stages = []
    for group in ("node/fast", "node/heartbeat", "pod/fast"):
        for path in sorted((directory / group).glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "Stage":
                    stages.append(doc)
    paced, ready_at = (f'.metadata.annotations["{name}"]' for name in (READY_PACED_ANNOTATION, READY_AT_ANNOTATION))
    for stage in stages:
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["delay"] = {"durationMilliseconds": 0, "durationFrom": {
                "expressionFrom": f'{ready_at} // .metadata.annotations["{READY_DELAY_ANNOTATION}"]'}}
            stage["spec"]["selector"]["matchExpressions"].append(
                {"key": f"{paced} == null or {ready_at} != null", "operator": "In", "values": ["true"]})
    return stages
