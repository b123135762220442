#!/usr/bin/env bash
# Builds the test control plane into a cache directory outside the checkout and says what it built and where.
# Idempotent: a directory already holding the binaries is reused (nothing is built). The directory is keyed
# by the hash of this module's go.mod, go.sum and main.go, so a version move builds afresh; tests/cluster/controlplane.py
# computes the same key. Contents:
#   controlplane  kube-apiserver, kube-controller-manager, kube-scheduler and etcd in one binary (main.go)
#   kwok          sigs.k8s.io/kwok/cmd/kwok at KWOK_VERSION (fake nodes whose pods run and become ready)
#   kwok-stages/  the Stage definitions of that kwok module (kustomize/stage), which kwok needs to move pods on
# and, in a directory of their own keyed by crds/go.mod and crds/go.sum, the upstream CRD YAML of the modules that
# file pins (crds-<hash>/: the Gateway API's HTTPRoute, Istio's networking CRDs).
# Builds use one package at a time and low priority (GOFLAGS=-p=1, nice): these machines are shared.
set -euo pipefail
cd "$(dirname "$0")"
KWOK_VERSION=v0.8.0
K8S_VERSION=$(awk '/^require k8s.io\/kubernetes /{print $3}' go.mod)
key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/app-update/controlplane-$K8S_VERSION-$key
command -v go >/dev/null || { echo "make controlplane: no Go toolchain on PATH (https://go.dev/dl/)" >&2; exit 1; }
mkdir -p "$dir"
# A module's directory in the module cache (downloaded if need be), outside any main module: go.sum stays as it is.
module_dir() { (cd / && GOFLAGS= go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=1"
if [ ! -x "$dir/controlplane" ]; then
  echo "building controlplane (Kubernetes $K8S_VERSION apiserver, controller-manager, scheduler; etcd" \
       "$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)) into $dir (about 10-25 min on 2 cores)"
  start=$SECONDS
  major=${K8S_VERSION#v}; minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
  pkg=k8s.io/component-base/version
  nice -n 10 go build -trimpath -o "$dir/controlplane.tmp" -ldflags "-s -w -X $pkg.gitVersion=$K8S_VERSION \
    -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" .
  mv "$dir/controlplane.tmp" "$dir/controlplane"
  echo "built controlplane in $((SECONDS - start)) s"
fi
if [ ! -x "$dir/kwok" ]; then
  echo "building kwok $KWOK_VERSION into $dir"
  start=$SECONDS
  tmp=$(mktemp -d)
  GOBIN=$tmp nice -n 10 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$tmp/kwok" "$dir/kwok"; rmdir "$tmp"
  echo "built kwok in $((SECONDS - start)) s"
fi
if [ ! -d "$dir/kwok-stages" ]; then
  src=$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")
  rm -rf "$dir/kwok-stages.tmp"; cp -r "$src/kustomize/stage" "$dir/kwok-stages.tmp"; chmod -R u+w "$dir/kwok-stages.tmp"
  mv "$dir/kwok-stages.tmp" "$dir/kwok-stages"
fi
crds=${XDG_CACHE_HOME:-$HOME/.cache}/app-update/crds-$(cat crds/go.mod crds/go.sum | sha256sum | cut -c1-12)
if [ ! -d "$crds" ]; then
  echo "copying the upstream CRDs pinned in controlplane/crds/go.mod into $crds"
  rm -rf "$crds.tmp"; mkdir -p "$crds.tmp"
  gateway=$(cd crds && go list -m -f '{{.Path}}@{{.Version}}' sigs.k8s.io/gateway-api)
  istio=$(cd crds && go list -m -f '{{.Path}}@{{.Version}}' istio.io/api)
  cp "$(module_dir "$gateway")/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" "$crds.tmp/"
  cp "$(module_dir "$istio")/kubernetes/customresourcedefinitions.gen.yaml" "$crds.tmp/istio-networking.yaml"
  chmod -R u+w "$crds.tmp"; mv "$crds.tmp" "$crds"
fi
echo "controlplane ready (Kubernetes $K8S_VERSION, kwok $KWOK_VERSION): $dir; CRDs: $crds"
