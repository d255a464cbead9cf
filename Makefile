# netopt — the stable interface: plan, test, up, e2e, bench. Every target creates the venv on first use.
STACK ?= dev
FORMAT ?= text
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv plan observe test tools lint unit goldens up e2e bench mutation clean

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV) || { rm -rf $(VENV); echo "netopt: cannot create $(VENV) with python3 -m venv; install it: sudo apt-get install -y python3-venv" >&2; exit 1; }
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## recheck, the ReDoS analyzer route regexes are checked with (components/spec/redos.py), pinned by its lock file
REDOS := tools/recheck/node_modules/.installed
$(REDOS): tools/recheck/package.json tools/recheck/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "netopt: npm is needed to install the ReDoS analyzer (recheck): sudo apt-get install -y npm" >&2; exit 1; }
	@cd tools/recheck && npm ci --no-audit --no-fund --loglevel=error >/dev/null  # not --prefix: it would move npm's global config (CA file) too
	@touch $@

venv: $(VENV)/.installed $(REDOS)

## make plan STACK=<s> [FORMAT=json]: offline plan — resources, scores, capacity, rendered config under build/<s>/
plan: venv
	@$(PY) -m offline.plan --stack $(STACK) --format $(FORMAT) $(if $(SINCE),--since $(SINCE)) $(if $(OBSERVED),--observed $(OBSERVED))

## make observe STACK=<s> LOG=<file|-> [FORMAT=json] [PATCH=<file>] [TOLERANCE=0.2] [WINDOW=10] [SERVICES=<file>]: the gateway's and service proxies' logs against the plan
observe: venv
	@$(PY) -m offline.observe --stack $(STACK) --log $(or $(LOG),-) --format $(FORMAT) $(if $(PATCH),--write-patch $(PATCH)) \
	  $(if $(TOLERANCE),--tolerance $(TOLERANCE)) $(if $(WINDOW),--window $(WINDOW)) $(if $(SERVICES),--services $(SERVICES))

## make test: lint, types, and every test except the Docker end-to-end stage (checks the system tools first)
test: tools lint unit

## make tools: the system tools make test runs (nginx, wrk, unshare, mount, capsh); prints the apt-get command if missing.
## Runs with the system python3 (stdlib only), so a fresh machine hears what to install before the venv is built.
tools:
	@python3 -m testbed.tools

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

unit: venv tools
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

## make goldens: rewrite tests/golden/*.nginx.conf from the renderer (after a reviewed change; the test only compares)
goldens: venv
	$(PY) -m testbed.goldens

## make e2e: apply the dev stack's Docker resources to a real dockerd started for the run
e2e: venv
	$(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

## make bench: offline-plan and policy-pack scaling, the data-plane benchmark (wrk; nginx vs naive vs HAProxy), the
## east-west benchmarks (service proxies: per-hop cost, gRPC balancing, noisy neighbour), then bench/check.py compares
## the fresh figures with the targets. Fails (non-zero) if any part crashes or a target is missed.
bench: venv
	$(PY) bench/plan_scale.py
	$(PY) -m offline.analyzer --generated 1000 --exit-zero
	$(PY) bench/run.py
	$(PY) bench/eastwest.py
	$(PY) bench/check.py

## make mutation: mutmut over components/ and policies/ (bench/mutation.py; slow, not part of make test)
mutation: venv
	$(PY) bench/mutation.py

## make up STACK=<s>: pulumi up with a local file backend unless PULUMI_BACKEND_URL is set
up: venv
	@command -v pulumi >/dev/null 2>&1 || { echo "netopt: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)."; \
	  echo "        'make plan STACK=$(STACK)' shows what would be deployed without it."; exit 1; }
	@mkdir -p .pulumi-state
	PULUMI_BACKEND_URL=$${PULUMI_BACKEND_URL:-file://$(CURDIR)/.pulumi-state} PULUMI_CONFIG_PASSPHRASE=$${PULUMI_CONFIG_PASSPHRASE-} \
	  sh -c 'pulumi stack select --create $(STACK) && pulumi up --stack $(STACK)'

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache mutants
