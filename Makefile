# app-update: the two everyday commands are `make preview` and `make test`.
PYTHON ?= python3
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
IMAGE ?= app-update/app

.PHONY: help preview test test-deps lint bench images clean schema prometheus chromium docker-registry controlplane rollout

help:
	@echo "make preview [STACK=dev]   show and render a stack offline (no Pulumi CLI, no cloud)"
	@echo "make test                  lint (ruff, lint-imports) and run the test suite"
	@echo "make test-deps             install and build what the tests need (CI: .ci/run and the workflows run it)"
	@echo "make rollout               install the rollout command as $(VENV)/bin/rollout (make preview does too)"
	@echo "make bench                 run the benchmarks in bench/ (by hand; numbers go in docs/verification.md)"
	@echo "make prometheus            install Debian's prometheus package (tests/test_prometheus.py runs it)"
	@echo "make chromium              install Debian's chromium (tests/test_report_browser.py screenshots reports)"
	@echo "make docker-registry       install Debian's docker-registry package (tests/test_promotion.py runs it)"
	@echo "make controlplane          build the test control plane (tests/cluster) into ~/.cache/app-update (Go)"
	@echo "make images [IMAGE=repo]   build the sample app's v1 and v2 images (needs a Docker engine)"
	@echo "make schema                regenerate schema/pulumi-stack.schema.json and schema/wave.schema.json"
	@echo "make clean                 remove build output"

# The venv Pulumi.yaml names (runtime.options.virtualenv), built once per requirements change. The first run says
# what it installs and shows pip's own progress (it takes minutes: the providers' SDKs are most of ~750 MB).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "Setting up $(VENV)/ (first run, or the requirements changed): the Python packages pinned in"
	@echo "requirements.txt and requirements-dev.txt (Pulumi SDK and providers, pytest, moto, ruff...), about 750 MB;"
	@echo "a few minutes on a fresh machine. pip's progress follows."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
	touch $@

# The `rollout` command in the venv, so that the verbs run without activating it: $(VENV)/bin/rollout preview dev.
# A three-line script (no build, no network) that runs this checkout's code with the venv's Python.
$(VENV)/bin/rollout: | $(VENV)/.installed
	@echo "Writing $@: the rollout verbs of $(CURDIR), without activating the venv"
	@printf '%s\n' '#!$(abspath $(PY))' '# Written by `make rollout`: the rollout verbs of this checkout.' \
	  'import sys' 'sys.path.insert(0, "$(CURDIR)")' 'from rollout.cli import main' 'sys.exit(main())' > $@.tmp
	@chmod +x $@.tmp && mv $@.tmp $@

rollout: $(VENV)/bin/rollout

# GNU make exits 2 whenever a recipe fails, whatever its status: the last line says rollout's own
# (0 done, 1 failed, 2 the input's fault, 3 a policy said no); `$(VENV)/bin/rollout preview` exits with it.
# It runs this checkout's code (python -m rollout here), whichever checkout wrote $(VENV)/bin/rollout.
preview: $(VENV)/bin/rollout
	@$(PY) -m rollout preview $(STACK) || { status=$$?; case $$status in 1) why="failed";; \
	  2) why="the input's fault";; 3) why="a policy said no";; *) why="interrupted or killed";; esac; \
	  echo "make preview: rollout preview exited $$status ($$why); make reports any failure as 2," \
	    "\`$(VENV)/bin/rollout preview $(STACK)\` exits $$status" >&2; exit $$status; }

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The validators generated from the upstream CRDs (HTTPRoute, VirtualService, DestinationRule).
tests/crd/node_modules/.package-lock.json: tests/crd/package-lock.json
	npm ci --prefix tests/crd --no-audit --no-fund --loglevel=error

# Compiled modules (and pytest's rewritten test modules) are kept in a cache outside the checkout, even where
# the environment says not to write them (PYTHONDONTWRITEBYTECODE): each run's two workers and the commands the
# tests start would otherwise compile the same sources again, about a tenth of the suite's CPU.
PYCACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/app-update/pycache
test: lint tests/crd/node_modules/.package-lock.json
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(PYCACHE) $(PY) -m pytest

# Everything `make test` needs that is not in the checkout, in one place: .ci/run and the workflows'
# shared setup (.github/actions/test-deps) both run this target, so a new prerequisite (a server the
# tests start, a browser) is added here once. Idempotent: what is there already is kept.
test-deps: $(VENV)/.installed prometheus chromium docker-registry controlplane tests/crd/node_modules/.package-lock.json

bench: $(VENV)/.installed
	$(PY) bench/bench_preview.py
	$(PY) bench/bench_canary_abort.py
	$(PY) bench/bench_cli_startup.py

schema: $(VENV)/.installed
	$(PY) -c "from model.config_models import SCHEMA_FILE, schema_text; open(SCHEMA_FILE, 'w').write(schema_text())"
	$(PY) -c "from model.wave_file import SCHEMA_FILE, schema_text; open(SCHEMA_FILE, 'w').write(schema_text())"

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

# Debian's chromium: tests/test_report_browser.py loads a canary report in it, headless, and screenshots it.
# As `make prometheus`: a no-op when it is there, apt's output only on failure.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); log=$$(mktemp); \
	  if { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -qq --no-install-recommends chromium; } >$$log 2>&1; then \
	    rm -f $$log; echo "installed $$(chromium --version 2>/dev/null | tail -n 1)"; \
	  else cat $$log; rm -f $$log; echo "make chromium: apt-get could not install chromium" >&2; exit 1; fi; }

# Debian's docker-registry (the distribution registry): tests/test_promotion.py starts it on a loopback port
# and pushes images to it. Idempotent and quiet like `make prometheus`; the package's own service is not used.
docker-registry:
	@command -v docker-registry >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); log=$$(mktemp); \
	  if { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -qq --no-install-recommends docker-registry; } >$$log 2>&1; then \
	    rm -f $$log; echo "installed docker-registry"; \
	  else cat $$log; rm -f $$log; echo "make docker-registry: apt-get could not install it" >&2; exit 1; fi; }
# The real control plane tests/cluster runs (kube-apiserver, controller-manager, scheduler, etcd, kwok): built
# once into a cache outside the checkout keyed by controlplane/'s go.mod, go.sum and main.go; a no-op when built.
controlplane:
	@controlplane/build.sh

images:
	docker build --build-arg APP_VERSION=v1 -t $(IMAGE):v1 app
	docker build --build-arg APP_VERSION=v2 -t $(IMAGE):v2 app

clean:
	rm -rf build .pytest_cache .ruff_cache
