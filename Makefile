# TaskForce. `make help` lists the targets.
SHELL  := /bin/bash
PYTHON ?= .venv/bin/python
PYTEST ?= .venv/bin/pytest
APT_PACKAGES := rabbitmq-server systemd-container debootstrap nftables iproute2 openssh-client python3-venv

include mk/java.mk
include mk/lab.mk
include mk/drills.mk
include mk/ops.mk
include mk/bench.mk

.PHONY: help deps venv test test-unit test-lab test-integration test-cluster dev bench-local wheelhouse up down clean

help:
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

deps: ## install everything the tests need on a clean Debian/Ubuntu machine (root)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES)
	@# the distro package enables and starts a system broker on 5672; the tests run their own
	-systemctl disable --now rabbitmq-server 2>/dev/null
	$(MAKE) venv
	$(MAKE) java-deps

venv: ## the Python venv with the app and its test tools
	test -x $(PYTHON) || python3 -m venv .venv
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]' -r mk/lab-requirements.txt -r mk/drills-requirements.txt -r mk/bench-requirements.txt

test: ## the whole suite: unit, contract, Java, lab logic and pre-checks, integration (one host), the lab cluster tier, the CI drills
	$(MAKE) test-unit
	$(MAKE) java-build
	$(MAKE) test-lab
	$(MAKE) test-integration
	$(MAKE) test-cluster
	$(MAKE) drills-ci

test-unit: ## fast (seconds): pure logic, CRDT laws, schemas, contract vectors, the drills' checker
	$(PYTEST) -q tests/unit tests/contract tests/drills

test-lab: ## the lab's own logic and the pre-check playbook against bad inventories (minutes; no nodes)
	$(PYTEST) -q tests/lab

test-integration: ## real processes on one host: RabbitMQ, 3 orchestrators, 2 gateways, workers
	$(PYTEST) -q -s tests/integration

test-cluster: ## the multi-node lab: rollout, idempotence, testinfra
	$(MAKE) up
	$(PYTEST) -q tests/cluster

dev: ## a local cluster of plain processes until Ctrl-C
	$(PYTHON) -m dev.cluster up

bench-local: ## no-op throughput and latency on the one-host cluster, beside the raw broker ceiling
	$(PYTHON) -m dev.bench_local --json reports/bench-local-$$(date +%Y%m%d-%H%M%S).json

wheelhouse: ## the app and its dependencies as wheels, for offline nodes
	rm -rf build/wheelhouse && mkdir -p build/wheelhouse
	$(PYTHON) -m pip wheel -q --wheel-dir build/wheelhouse .

up: wheelhouse java-build lab-up lab-site ## the lab, rolled out by the same playbooks as real machines
	$(PYTHON) -m dev.lab_summary inventories/lab

down: lab-down ## remove the lab

clean:
	rm -rf build reports .dev
