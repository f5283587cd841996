# Two commands on a fresh machine: `make demo` runs the demo, `make test` runs the checks and tests.
# Both create the virtualenv and install shadowproxy from this source tree first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

COMPILED := build/compiled

.PHONY: demo test test-compiled lint bench bench-compare bench-report bench-proxy bench-proxy-compiled bench-client clean

# The development install is plain Python (SHADOWPROXY_COMPILE=0, setup.py): an editable
# install would put compiled modules beside the sources, and they would shadow every edit.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	SHADOWPROXY_COMPILE=0 $(BIN)/python -m pip install --quiet --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/shadowproxy demo

lint: $(STAMP)
	$(BIN)/ruff check shadowproxy tests bench setup.py .ci
	$(BIN)/ruff format --check shadowproxy tests bench setup.py .ci
	$(BIN)/mypy
	$(BIN)/lint-imports

# The regression guard prints its figures after the suite; it has no thresholds. The suite
# runs twice: on the plain Python sources, then on the compiled build (test-compiled).
test: lint
	$(BIN)/pytest -q tests/bench --benchmark-enable --benchmark-min-rounds=20 \
		--benchmark-max-time=0.2 --benchmark-columns=min,median,rounds
	SHADOWPROXY_BUILD=plain $(BIN)/pytest -q
	$(MAKE) test-compiled

# The suite against the hot path compiled by mypyc (setup.py), in a copy of the tree under
# build/ that keeps its build between runs. Without a C compiler it is skipped with a note,
# unless SHADOWPROXY_COMPILE=1 (CI) requires it.
test-compiled: $(STAMP)
	@$(BIN)/python .ci/compiled_tree.py $(COMPILED); status=$$?; \
	if [ $$status -eq 75 ]; then echo "compiled pass skipped: no C compiler"; exit 0; fi; \
	[ $$status -eq 0 ] || exit $$status; \
	cd $(COMPILED) && SHADOWPROXY_BUILD=compiled $(CURDIR)/$(BIN)/pytest -q

bench-compare: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_compare.py

bench-report: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_report.py

# Side by side with nginx proxy_pass and mirror; needs nginx and wrk (apt-get install nginx-light wrk).
bench-proxy: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_proxy.py $(BENCH_ARGS)

# The same benchmark on the compiled build (what pip install . and the image run), built in
# build/compiled as the compiled test pass builds it; the results land in bench/results/.
bench-proxy-compiled: $(STAMP)
	SHADOWPROXY_COMPILE=1 $(BIN)/python .ci/compiled_tree.py $(COMPILED)
	cd $(COMPILED) && PYTHONPATH=$(CURDIR)/$(COMPILED) $(CURDIR)/$(BIN)/python bench/bench_proxy.py \
		--output $(CURDIR)/bench/results/proxy.json $(BENCH_ARGS)

# The upstream client alone: h1 next to aiohttp's client, CPU per request; needs nginx.
bench-client: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/bench_client.py

bench: bench-compare bench-report bench-client bench-proxy

clean:
	rm -rf $(VENV) shadow-logs build
