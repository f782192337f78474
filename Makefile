# ringback — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test modules run on this many worker processes (pytest-xdist), each module whole on one worker: most of
# an integration test's time is spent waiting on its pipeline, so more workers than cores pays.
TEST_WORKERS ?= 4
PARALLEL := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
LINT_PATHS := services tests deploy examples
# The hot modules' compiled build (python -m ringback.tools.compile): redone whenever one of them changes.
HOT_LIST := services/ringback/compiled_modules.txt
HOT_SOURCES := $(shell grep -v -e '^\#' -e '^ *$$' $(HOT_LIST) | sed 's|\.|/|g; s|^|services/|; s|$$|.py|')
COMPILED := services/ringback/compiled_manifest.json
# Every Chinese mobile segment's carrier and region, worked out for the phonenumbers installed.
SEGMENTS := services/ringback/normalizer/cn_segments.bin

.PHONY: help run test test-fast lint docs test-all test-containers bench bench-queries soak venv tools clean wrk promtool

## List the targets and what each does.
help:
	@awk '/^## /{doc = doc substr($$0, 4) " "; next} /^[a-z-]+:/{if (doc) {split($$0, t, ":"); printf "  make %-16s %s\n", t[1], doc}; doc = ""; next} {doc = ""}' $(MAKEFILE_LIST)

## The virtual environment with ringback and its development tools (pip, from pyproject.toml), and
## ringback's hot modules compiled with mypyc where a C compiler is at hand (else they run from source),
## and the table of mobile segments' carriers and regions.
venv: $(COMPILED) $(SEGMENTS)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ringback needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(COMPILED): $(STAMP) $(HOT_LIST) $(HOT_SOURCES) services/ringback/compiled.py services/ringback/tools/compile.py
	$(BIN)/python -m ringback.tools.compile

$(SEGMENTS): $(COMPILED) services/ringback/tools/segments.py services/ringback/normalizer/phones.py
	$(BIN)/python -m ringback.tools.segments

## Start the whole pipeline (embedded Kafka broker + edge + normalizer + sink + embedded ClickHouse).
run: $(COMPILED) $(SEGMENTS)
	$(BIN)/ringback run

## Full test suite (unit + integration against the real broker and ClickHouse engine), after the lint.
test: $(COMPILED) $(SEGMENTS) lint tools
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

## The edit loop (a few minutes): the unit tests and the end-to-end smoke module on one `ringback run`.
test-fast: $(COMPILED) $(SEGMENTS)
	$(BIN)/python -m pytest $(PARALLEL) tests/unit tests/integration/test_pipeline_e2e.py $(PYTEST_ARGS)

## ruff (lint and format check) and mypy (strict, services/); configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

## Regenerate the generated parts of the docs: configuration table, event fields, metrics catalog, the OpenAPI document (a test checks them).
docs: $(STAMP)
	$(BIN)/python -m tests.regen_docs

## Everything: the suite with 1,000 examples for every property test, the soak test (slow marker) and the containers' tests where a container engine answers.
test-all: $(COMPILED) $(SEGMENTS) lint tools
	RINGBACK_PROPERTY_EXAMPLES=1000 $(BIN)/python -m pytest $(PARALLEL) -m '' $(PYTEST_ARGS)

## The integration suite against an Apache Kafka cluster (KRaft, 3 brokers, replication 3) and a ClickHouse
## server, started with testcontainers; where no container engine answers, one line says so and nothing runs.
test-containers: $(STAMP)
	@reason=$$($(BIN)/python -c 'from tests.containers import engine_missing; print(engine_missing() or "")'); \
	if [ -n "$$reason" ]; then echo "test-containers skipped: $$reason"; \
	else RINGBACK_TEST_BACKEND=containers $(BIN)/python -m pytest -m 'integration or containers' $(PYTEST_ARGS); fi

## Benchmarks: every stage against its baseline; table, JSON report and chart under bench-results/.
bench: $(COMPILED) $(SEGMENTS) wrk
	$(BIN)/ringback bench

## The analyst cookbook's queries on 100 million generated events, timed (report under bench-results/queries).
bench-queries: $(STAMP)
	$(BIN)/ringback bench-queries $(BENCH_QUERIES_ARGS)

## Soak: an hour of steady load on `ringback run`, every process's memory sampled (report under bench-results/soak).
soak: $(COMPILED) $(SEGMENTS)
	$(BIN)/ringback soak $(SOAK_ARGS)

## System tools the tests and benchmarks use (wrk, promtool), from Debian's packages; one line for each that can't be had.
tools: wrk promtool

## wrk (a C HTTP load generator) for the edge stage of the benchmark; best effort, from the system's packages.
wrk:
	@command -v wrk >/dev/null 2>&1 || { (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null 2>&1 || echo "wrk could not be installed: the edge stage of the benchmark will be skipped"; }

## promtool (Debian package prometheus) for the alert rules' checks and unit tests; best effort, like wrk.
promtool:
	@command -v promtool >/dev/null 2>&1 || { (apt-get install -y --no-install-recommends prometheus || (apt-get update && apt-get install -y --no-install-recommends prometheus)) >/dev/null 2>&1 || sudo apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || echo "promtool could not be installed: the alert rule and PromQL checks will be skipped"; }

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis services/.mypy_cache $(COMPILED) $(SEGMENTS)
	find services -name '*.so' -delete
