# The benchmarks (bench/, docs/benchmarks.md). Included by the top Makefile.
#
#   make bench                          raw ceiling, TaskForce and Celery on the lab; scaling; SSE memory
#   make bench BENCH_ARGS="--duration 10 --rounds 1"   a quick check
#   make bench-unit                     the benchmark's pure logic (seconds, no cluster)
#
# Each run writes reports/bench-<timestamp>/report.md, results.json and PNG plots. It needs the
# lab rolled out (`make up`); the worker nodes get Celery and pika from build/bench-wheels.

BENCH_PYTHON ?= .venv/bin/python
BENCH_INVENTORY ?= inventories/lab
BENCH_ARGS ?=
BENCH_OUT ?= reports/bench-$(shell date +%Y%m%d-%H%M%S)

.PHONY: bench bench-unit bench-wheels bench-deps

bench: bench-wheels ## raw broker vs TaskForce vs Celery on the lab; report in reports/bench-<timestamp>/
	$(BENCH_PYTHON) -m bench --inventory $(BENCH_INVENTORY) --out $(BENCH_OUT) $(BENCH_ARGS)

bench-unit: ## the benchmark's statistics, summary and profile parsing (fast, no cluster)
	$(PYTEST) -q tests/unit/test_bench.py

bench-deps: ## the controller's benchmark requirements (make venv installs them too)
	$(BENCH_PYTHON) -m pip install -q -r mk/bench-requirements.txt

bench-wheels: ## Celery and pika as wheels for the offline worker nodes
	@test -n "$$(ls build/bench-wheels/celery-*.whl 2>/dev/null)" || \
	  $(BENCH_PYTHON) -m pip wheel -q --wheel-dir build/bench-wheels "celery==$$($(BENCH_PYTHON) -c 'import celery; print(celery.__version__)')" pika
