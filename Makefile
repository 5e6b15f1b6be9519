# The two commands: `make demo` and `make test`. Both bootstrap .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit venv clean soak bench bench-fleet bench-warehouse system-deps wheelhouse

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The wheels tests/integration/test_wheel.py installs offline with pipx: the project's
## dependencies and pip (pipx's own). An install step like the venv: it may use PyPI.
WHEELHOUSE := .wheelhouse
$(WHEELHOUSE)/.complete: pyproject.toml $(STAMP)
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) . pip
	rm -f $(WHEELHOUSE)/lineside-*.whl
	touch $@

wheelhouse: $(WHEELHOUSE)/.complete

## Debian packages the tests run as real peers or tools: mosquitto (the broker),
## systemd-analyze (unit checks), unshare/nsenter (the full-disk test's mount namespace),
## chromium + chromedriver (the dashboard's browser tests, driven by Selenium), haproxy (the
## load balancer in front of several HTTPS ingest instances in the fleet test).
## Installed only when missing (as root, with apt-get).
SYSTEM_TOOLS := mosquitto:mosquitto systemd-analyze:systemd unshare:util-linux nsenter:util-linux \
	chromium:chromium chromedriver:chromium-driver haproxy:haproxy
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; fi

## Run the demo: simulated devices and ERP, the gateway and the operator TUI on this machine.
demo: $(STAMP)
	$(BIN)/lineside demo

## Lint, type check and the whole test suite, one pytest worker per core (TEST_WORKERS), a
## test file to a worker: its module fixtures (a PostgreSQL database, a broker) are made once.
TEST_WORKERS ?= auto
test: $(STAMP) system-deps wheelhouse
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The fast loop: the pure tests only (tests/unit: no sockets, no processes), well under a minute.
unit: $(STAMP)
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) $(WHEELHOUSE) .mypy_cache .pytest_cache .ruff_cache

## The soak run (not in CI): the simulated site under random faults for SOAK_MINUTES (30),
## then the conservation check; the report goes to bench/results/soak-latest.{md,json}.
## E.g. make soak SOAK_ARGS="--postgres-dsn postgresql://postgres@127.0.0.1:5432/postgres"
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

## Benchmarks (about 15 minutes on 2 cores, 7 of them the fleet rows): each gateway figure
## beside the bare library's, written to bench/results/latest.{json,md}. E.g. make bench BENCH_ARGS="--only drain --keep"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## The fleet rows alone (also part of `make bench`): warehouse records/s with 1, 2 and 3 ingest
## instances for 20 and 200 simulated gateways, on fresh PostgreSQL databases (127.0.0.1:5432);
## the detailed table in bench/results/fleet-latest.{json,md} (docs/scale-out.md quotes it).
## E.g. make bench-fleet FLEET_BENCH_ARGS="--records 100000 --keep"
bench-fleet: $(STAMP)
	$(BIN)/python -m bench.fleet_scale $(FLEET_BENCH_ARGS)

## The warehouse's read side at scale (not in CI; about 15 minutes and 20 GB of disk at the
## default 10 million packs): a fresh PostgreSQL database on 127.0.0.1:5432 loaded through
## the real migrations and commit path, then the reader's run report and traces timed beside
## bare psycopg, with EXPLAIN checks; results in bench/results/warehouse-latest.{json,md}.
## E.g. make bench-warehouse WAREHOUSE_BENCH_ARGS="--packs 1000000 --keep"
WAREHOUSE_BENCH_ARGS ?= --packs 10000000
bench-warehouse: $(STAMP)
	$(BIN)/python -m bench.warehouse_scale $(WAREHOUSE_BENCH_ARGS)
