# app-update: the two everyday commands are `make preview` and `make test`.
PYTHON ?= python3
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
IMAGE ?= app-update/app

.PHONY: help preview test lint bench images clean schema prometheus controlplane

help:
	@echo "make preview [STACK=dev]   show and render a stack offline (no Pulumi CLI, no cloud)"
	@echo "make test                  lint (ruff, lint-imports) and run the test suite"
	@echo "make bench                 run the benchmarks in bench/ (by hand; numbers go in the README)"
	@echo "make prometheus            install Debian's prometheus package (tests/test_prometheus.py runs it)"
	@echo "make controlplane          build the test control plane (tests/cluster) into ~/.cache/app-update (Go)"
	@echo "make images [IMAGE=repo]   build the sample app's v1 and v2 images (needs a Docker engine)"
	@echo "make schema                regenerate schema/pulumi-stack.schema.json from the config models"
	@echo "make clean                 remove build output"

# The venv Pulumi.yaml names (runtime.options.virtualenv), built once per requirements change.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

preview: $(VENV)/.installed
	$(PY) -m rollout preview $(STACK)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The validators generated from the upstream CRDs (HTTPRoute, VirtualService, DestinationRule).
tests/crd/node_modules/.package-lock.json: tests/crd/package-lock.json
	npm ci --prefix tests/crd --no-audit --no-fund --loglevel=error

test: lint tests/crd/node_modules/.package-lock.json
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/bench_preview.py
	$(PY) bench/bench_canary_abort.py

schema: $(VENV)/.installed
	$(PY) -c "from model.config_models import SCHEMA_FILE, schema_text; open(SCHEMA_FILE, 'w').write(schema_text())"

# Debian's prometheus package: tests/test_prometheus.py starts the binary on a loopback port (CI's .ci/run runs
# this too). Idempotent and quiet: nothing happens when the binary is there; apt's output only on failure. As root,
# or through sudo. On a machine running systemd the package also enables a prometheus service on :9090 (stop it
# with: sudo systemctl disable --now prometheus); the tests never use it.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); log=$$(mktemp); \
	  if { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -qq --no-install-recommends prometheus; } >$$log 2>&1; then \
	    rm -f $$log; echo "installed $$(prometheus --version 2>&1 | head -n 1)"; \
	  else cat $$log; rm -f $$log; echo "make prometheus: apt-get could not install prometheus" >&2; exit 1; fi; }

# The real control plane tests/cluster runs (kube-apiserver, controller-manager, scheduler, etcd, kwok): built
# once into a cache outside the checkout keyed by controlplane/'s go.mod, go.sum and main.go; a no-op when built.
controlplane:
	@controlplane/build.sh

images:
	docker build --build-arg APP_VERSION=v1 -t $(IMAGE):v1 app
	docker build --build-arg APP_VERSION=v2 -t $(IMAGE):v2 app

clean:
	rm -rf build .pytest_cache .ruff_cache
