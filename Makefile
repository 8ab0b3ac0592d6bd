# `make setup` builds .venv from requirements.txt (and the project, for .venv/bin/tenantctl), the Pulumi engine
# into .venv/bin (engine/build.sh) and the local Kubernetes control plane beside it (engine/build_kube.sh);
# `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AWS_VERSION := $(shell sed -n 's/^pulumi-aws==//p' requirements.txt)
AWS_PLUGIN_DIR := $(VENV)/pulumi-home/plugins/resource-aws-v$(AWS_VERSION)

.PHONY: setup venv engine test test-long lint schema bench clean operator-crds

setup: $(VENV)/.installed engine

# The virtualenv alone, for CI jobs that install the Pulumi CLI and plugins the usual way (pulumi/actions).
venv: $(VENV)/.installed

# The project itself, editable, for its console script .venv/bin/tenantctl (its dependencies are the pins above).
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# The CLI and the plugins that can be built from Go modules; the AWS stand-in only where no real
# pulumi-resource-aws is installed (see README: what runs for real); etcd, kube-apiserver and
# kube-controller-manager for services/kube_apiserver.py, also where a Pulumi CLI is installed.
engine: $(VENV)/.installed
	engine/build.sh $(VENV)/bin
	engine/build_kube.sh $(VENV)/bin
	@if [ -x $(VENV)/bin/pulumi ] && ! ls $(AWS_PLUGIN_DIR)/pulumi-resource-aws >/dev/null 2>&1 \
	    && ! ls $$HOME/.pulumi/plugins/resource-aws-v* >/dev/null 2>&1; then \
	  mkdir -p $(AWS_PLUGIN_DIR) && ln -sf $(CURDIR)/tests/standins/bin/pulumi-resource-aws $(AWS_PLUGIN_DIR)/; \
	  echo "engine: no pulumi-resource-aws here; registered the AWS stand-in (tests/standins) in $(AWS_PLUGIN_DIR)"; \
	fi

# Opt-in: the Pulumi Kubernetes Operator's CRDs, for `tenantctl render-operator --crds .venv/operator-crds`, from its
# Go module where the Go proxy serves it (it is not served on every machine, so setup and test never need it).
operator-crds:
	engine/fetch_operator_crds.sh $(VENV)/operator-crds

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 --dist loadgroup --durations=25

# The long profiles that `make test` runs bounded (fleet rule 8), as .github/workflows/long-tests.yml runs them weekly:
# hours, not minutes. TENANT_FAULT_SEED picks the random kill times (default 19).
test-long: setup
	TENANT_MODEL_EXAMPLES=20 TENANT_MODEL_STEPS=12 TENANT_MODEL_WALK=full TENANT_FAULT_SWEEP=full TENANT_FAULT_MAX_EVENT=60 \
	  TENANT_FAULT_RANDOM=5 TENANT_S3_E2E=1 TENANT_DIGEST_GROUND_TRUTH=full $(PY) -m pytest -n 2 --dist loadgroup \
	  tests/e2e/test_operator_model.py tests/e2e/test_fault_injection.py tests/e2e/test_s3_backend.py \
	  tests/e2e/test_release_digest.py

lint: setup
	$(VENV)/bin/ruff check .

schema: setup
	$(PY) -m tenantctl schema --write

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .rehearsal
