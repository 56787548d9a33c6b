# The README's two commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The checkout's own modules as bytecode (what changed since the last run), so that the
# processes a test starts do not compile them again (see the install step below).
BYTECODE = $(BIN)/python -m compileall -q -j 0 newsletter workers tests > /dev/null
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test test-partition lint typecheck check bench bench-quick clean lock outdated wheel-demo install test-future mutation

# Every install comes from uv.lock (hashes included): uv itself is pinned by hash in
# requirements/bootstrap.txt, then `uv sync --frozen` installs exactly the lock.
$(STAMP): pyproject.toml uv.lock requirements/bootstrap.txt requirements/httpx-0.27.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/bootstrap.txt
	# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on the CI
	# machine) nothing is ever cached at import, and every process (each CLI call, each
	# worker) compiled celery, kombu, redis, rich, ... from source again.
	$(UV) sync -q --frozen --inexact --extra dev --compile-bytecode
	# httpx 0.27 beside the locked one (tests/wechat/test_encoding.py), also pinned by hash
	$(BIN)/pip install -q --no-deps --require-hashes --upgrade --target $(VENV)/httpx-0.27 \
	  -r requirements/httpx-0.27.txt
	touch $(STAMP)

# A server: exactly the lock, no test tools, the package installed as from its wheel.
install:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/bootstrap.txt
	$(UV) sync -q --frozen --inexact --no-editable --compile-bytecode

# Upgrade the lock (and uv itself) within pyproject's ranges; review the diff, run make test.
lock: $(STAMP)
	$(UV) lock --upgrade
	echo 'uv' | $(UV) pip compile - -q --generate-hashes --no-header --no-annotate \
	  -o requirements/bootstrap.txt.new
	{ sed -n '1,2p' requirements/bootstrap.txt; cat requirements/bootstrap.txt.new; } \
	  > requirements/bootstrap.txt.tmp
	mv requirements/bootstrap.txt.tmp requirements/bootstrap.txt; rm requirements/bootstrap.txt.new

# What a fresh resolve would change today (nothing is written): drift, seen before it breaks.
outdated: $(STAMP)
	$(UV) lock --upgrade --dry-run

demo: $(STAMP)
	$(BIN)/newsletter demo

test: $(STAMP)
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(BYTECODE)
	$(BIN)/pytest -n 2 -q -m "not slow" --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The suite with the product's clock a year ahead (NEWSLETTER_CLOCK_OFFSET, inherited by
# every process it starts; PostgreSQL and Redis keep real time): a comparison or a test that
# depends on today's date fails here. (libfaketime was tried: it breaks Python's timed
# waits, so threads that wait with a timeout hang.)
test-future: $(STAMP)
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(BYTECODE)
	NEWSLETTER_CLOCK_OFFSET=365d $(BIN)/pytest -n 2 -q -m "not slow"; \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The slow suite: the partition harness (tests/fleet, docs/delivery.md: hosts made of network
# namespaces, so root) and the 8-worker-process stop tests (tests/e2e/test_send_safety.py);
# it runs alone (a few minutes), after `make test`. CI requires it to run.
test-partition: $(STAMP)
	$(BYTECODE)
	NEWSLETTER_PARTITION_REQUIRED=1 $(BIN)/pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The wheel, installed with the locked dependencies into a fresh venv outside the checkout,
# runs the demo and a migration from an empty folder (scripts/wheel-demo.sh).
wheel-demo: $(STAMP)
	./scripts/wheel-demo.sh

# Mutation check of the modules in [tool.mutmut] (pyproject.toml); survivors: `mutmut results`.
mutation: $(STAMP)
	$(BIN)/mutmut run --max-children 2; $(BIN)/mutmut results

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint typecheck test

# Every benchmark at a reduced size against benchmarks/recorded.json (1-3 minutes).
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/quick.py

clean:
	rm -rf var .pytest_cache .mypy_cache
