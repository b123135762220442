// The upstream CustomResourceDefinitions the traffic modes' custom resources need, pinned as Go modules (their
// zips carry the CRD YAML): tests/cluster installs them from the module cache (controlplane/build.sh copies them).
// Nothing here is compiled. To move a version: edit it below, then `go mod download -x` here (go.sum follows).
//   sigs.k8s.io/gateway-api  config/crd/standard/gateway.networking.k8s.io_httproutes.yaml   (traffic: gateway)
//   istio.io/api             kubernetes/customresourcedefinitions.gen.yaml                     (traffic: istio)
// The AWS Load Balancer Controller's CRDs (TargetGroupBinding, IngressClassParams) are not installed: no traffic
// mode renders those kinds (nlb/alb weights live in Service and Ingress annotations, built-in kinds).
module app-update/controlplane/crds

go 1.25.0

require (
	istio.io/api v1.28.3
	sigs.k8s.io/gateway-api v1.4.1
)
