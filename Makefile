# app-update: the two everyday commands are `make preview` and `make test`.
PYTHON ?= python3
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
IMAGE ?= app-update/app

.PHONY: help preview test lint bench images clean schema

help:
	@echo "make preview [STACK=dev]   show and render a stack offline (no Pulumi CLI, no cloud)"
	@echo "make test                  lint and run the test suite"
	@echo "make bench                 run the benchmarks in bench/ (by hand; numbers go in the README)"
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

test: lint
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/bench_preview.py
	$(PY) bench/bench_canary_abort.py

schema: $(VENV)/.installed
	$(PY) -c "from components.config_schema import SCHEMA_FILE, schema_text; open(SCHEMA_FILE, 'w').write(schema_text())"

images:
	docker build --build-arg APP_VERSION=v1 -t $(IMAGE):v1 app
	docker build --build-arg APP_VERSION=v2 -t $(IMAGE):v2 app

clean:
	rm -rf build .pytest_cache .ruff_cache
