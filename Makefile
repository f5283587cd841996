# Two commands on a fresh machine: `make demo` runs the demo, `make test` runs the checks and tests.
# Both create the virtualenv and install shadowproxy from this source tree first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-compare bench-report bench-proxy bench-client clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/shadowproxy demo

lint: $(STAMP)
	$(BIN)/ruff check shadowproxy tests bench
	$(BIN)/ruff format --check shadowproxy tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The regression guard prints its figures after the suite; it has no thresholds.
test: lint
	$(BIN)/pytest -q tests/bench --benchmark-enable --benchmark-min-rounds=20 \
		--benchmark-max-time=0.2 --benchmark-columns=min,median,rounds
	$(BIN)/pytest -q

bench-compare: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_compare.py

bench-report: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_report.py

# Side by side with nginx proxy_pass and mirror; needs nginx and wrk (apt-get install nginx-light wrk).
bench-proxy: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_proxy.py $(BENCH_ARGS)

# The upstream client alone: h1 next to aiohttp's client, CPU per request; needs nginx.
bench-client: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_client.py

bench: bench-compare bench-report bench-client bench-proxy

clean:
	rm -rf $(VENV) shadow-logs
