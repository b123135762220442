"""A loopback stand-in for the Kubernetes API server's GET of single objects, for the live weight
readers (operations/live_weight.py) until the real control plane fixture (tests/cluster/) serves them.

It answers as the API server does: the object's JSON at its REST path (built from the official
client's own models with `sanitize_for_serialization`, or the custom resource's dict), the
`/status` subresource with the same object, and for anything else a 404 `Status` object
("<plural>.<group> \"<name>\" not found", reason NotFound) that the client raises as ApiException.
`client()` is a `kubernetes.client.ApiClient` pointed at it: the readers take that, as they take one
built from a kubeconfig.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from typing import Any

from kubernetes import client as k8s

_PATH = re.compile(r"^/apis?/(?:(?P<group>[^/]+)/)?(?P<version>v[^/]+)/namespaces/(?P<namespace>[^/]+)/"
                   r"(?P<plural>[^/]+)/(?P<name>[^/]+?)(?P<status>/status)?$")
KINDS = {  # kind → (group, version, plural)
    "Deployment": ("apps", "v1", "deployments"),
    "Ingress": ("networking.k8s.io", "v1", "ingresses"),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices"),
}


class KubeApiStub:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], Any] = {}  # (group, plural, namespace, name) → JSON
        self.lock = threading.Lock()
        self.reads = 0
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                match = _PATH.match(self.path.split("?", 1)[0])
                with stub.lock:
                    stub.reads += 1
                    key = (match["group"] or "", match["plural"], match["namespace"], match["name"]) if match else None
                    found = stub.objects.get(key) if key else None
                if found is None:
                    group = f".{match['group']}" if match and match["group"] else ""
                    what = f'{match["plural"]}{group} "{match["name"]}"' if match else "the server could not find"
                    body, code = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": f"{what} not found", "reason": "NotFound", "code": 404}, 404
                else:
                    body, code = found, 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, kind: str, namespace: str, name: str, obj: Any) -> None:
        """Store an object: a kubernetes client model or a dict (custom resources)."""
        group, version, plural = KINDS[kind]
        body = k8s.ApiClient().sanitize_for_serialization(obj) if not isinstance(obj, dict) else obj
        body.setdefault("apiVersion", f"{group}/{version}" if group != "" else version)
        body.setdefault("kind", kind)
        with self.lock:
            self.objects[(group, plural, namespace, name)] = body

    def remove(self, kind: str, namespace: str, name: str) -> None:
        group, _, plural = KINDS[kind]
        with self.lock:
            self.objects.pop((group, plural, namespace, name), None)

    def client(self) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        configuration.host = self.url
        return k8s.ApiClient(configuration)

    def __enter__(self) -> KubeApiStub:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def deployment(name: str, replicas: int, ready: int | None = None, *, generation: int = 2,
               observed: int | None = None) -> k8s.V1Deployment:
    """A Deployment as the API server returns it after the controller has (or has not) caught up."""
    ready = replicas if ready is None else ready
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name, namespace="app-update", generation=generation),
        spec=k8s.V1DeploymentSpec(replicas=replicas, selector=k8s.V1LabelSelector(match_labels={"app": name}),
                                  template=k8s.V1PodTemplateSpec()),
        status=k8s.V1DeploymentStatus(replicas=replicas, ready_replicas=ready or None, updated_replicas=replicas,
                                      available_replicas=ready or None,
                                      observed_generation=generation if observed is None else observed))


def ingress(name: str, annotations: dict[str, str], *, served: bool = True) -> k8s.V1Ingress:
    status = k8s.V1IngressStatus(load_balancer=k8s.V1IngressLoadBalancerStatus(
        ingress=[k8s.V1IngressLoadBalancerIngress(hostname="k8s-lb.elb.us-west-2.amazonaws.com")] if served else None))
    return k8s.V1Ingress(metadata=k8s.V1ObjectMeta(name=name, namespace="app-update", annotations=annotations),
                         spec=k8s.V1IngressSpec(), status=status)
