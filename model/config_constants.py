"""The stack file's names, modes and defaults: plain constants, no pydantic.

model/config_models.py checks the stack file with them and re-exports them; modules that need only a name or a
default (the command line, the operations) import them from here, without building the models.
"""

from __future__ import annotations

PROJECT = "app-update"
STRATEGIES = ("Recreate", "RollingUpdate", "Canary", "BlueGreen")
# A BlueGreen release's two colors: two Deployments, one behind the active Service and one behind the preview Service.
COLORS = ("blue", "green")
TRAFFIC_MODES = ("replicas", "nlb", "alb", "nginx", "gateway", "istio", "skipper", "dns")
# Modes that take `gateway` (a Gateway API or Istio Gateway to bind to) and `ingressClass`.
GATEWAY_MODES = ("gateway", "istio")
INGRESS_MODES = ("alb", "nginx", "skipper")
CLUSTER_MODES = ("kubeconfig", "eks")
# Modes whose router reads each HTTP request (a header or cookie route, `canary.match`), and why the others cannot.
MATCH_MODES = ("alb", "nginx", "gateway", "istio", "skipper")
NO_MATCH_REASONS = {
    "replicas": "one Service selects both tracks' pods: kube-proxy picks a pod per connection and never reads a "
                "header or cookie",
    "nlb": "an NLB forwards TCP and never sees a header or cookie",
    "dns": "DNS answers name lookups and never sees a request, its headers or cookies",
}
# Modes that can keep a client on the track it first reached (`canary.sticky`), and why the others cannot.
STICKY_MODES = ("alb", "nginx")
NO_STICKY_REASONS = {
    **NO_MATCH_REASONS,
    "gateway": "HTTPRoute sessionPersistence is in the Gateway API's experimental channel only (v1.4): an API server "
               "with the standard CRDs refuses the route (field not declared in schema)",
    "istio": "Istio's cookie affinity (DestinationRule consistentHash) picks a pod within a subset; the weighted "
             "choice between the stable and canary subsets is made per request",
    "skipper": "skipper's backend-weights choose a backend per request and have no session affinity",
}
# The value a `canary.match.cookie` must hold (ingress-nginx's canary-by-cookie reads `always`; the other routers
# are given the same rule).
MATCH_COOKIE_VALUE = "always"
DEFAULT_IMAGE = "arungupta/app-upgrade"
DEFAULT_KUBERNETES_VERSION = "1.35"
DEFAULT_SURGE = "25%"
DEFAULT_UNAVAILABLE = "25%"
# The minor versions the strict schema check has schemas for (kubernetes-validate 1.37.0
# ships 1.25 to 1.37; tests/test_config.py keeps the two in step).
SUPPORTED_KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
INT32_MAX = 2**31 - 1
# A canary's Services are `<release>-stable`/`-canary`; a Service name is at most 63 characters.
MAX_RELEASE_NAME = 63 - len("-canary")
# A BlueGreen release's default preview Service is `<serviceName>-preview`.
PREVIEW_SUFFIX = "-preview"
