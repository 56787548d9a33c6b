# The README's two commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-partition lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# httpx 0.27 beside the installed one: the WeChat client's bodies must not depend on it
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/httpx-0.27 'httpx==0.27.2' 'sniffio>=1.3'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/newsletter demo

test: $(STAMP)
	./scripts/install-system-deps.sh
	./scripts/ensure-services.sh
	$(BIN)/pytest -n 2 -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The partition harness (tests/fleet, docs/delivery.md): hosts made of network namespaces,
# so root; it runs alone (about 2 minutes), after `make test`. CI requires it to run.
test-partition: $(STAMP)
	NEWSLETTER_PARTITION_REQUIRED=1 $(BIN)/pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check newsletter workers tests

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint typecheck test

clean:
	rm -rf var .pytest_cache .mypy_cache
