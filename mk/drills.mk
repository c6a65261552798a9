# The failover drills (drills/, docs/drills.md). Included by the top Makefile.
#
#   make drills                 the whole catalogue against the lab (inventories/lab)
#   make drills DRILLS=leader-kill DRILLS_INVENTORY=inventories/prod DRILLS_ARGS="--rate 20"
#   make drills-ci              leader-kill, rabbit-node-kill, worker-power-cut-*, full-outage on the lab
#   make drills-local           what the one-host dev cluster can run (root + rabbitmq-server; no lab)
#   make drills-unit            the checker on synthetic histories (seconds)
#
# Each run writes reports/drills-<timestamp>/report.md, results.json, and per drill a
# history.jsonl and a timeline.png. The exit status is non-zero when an accepted job was lost
# or an invariant broke (1), or when a drill refused to start on an unhealthy cluster (2).

DRILLS_PYTHON    ?= .venv/bin/python
DRILLS_INVENTORY ?= inventories/lab
DRILLS           ?= all
DRILLS_ARGS      ?=
DRILLS_OUT       ?= reports/drills-$(shell date +%Y%m%d-%H%M%S)

.PHONY: drills drills-ci drills-local drills-unit drills-deps drills-list

drills: ## the failover drill catalogue against the lab; report in reports/drills-<timestamp>/
	$(DRILLS_PYTHON) -m drills run $(DRILLS) --inventory $(DRILLS_INVENTORY) --out $(DRILLS_OUT) $(DRILLS_ARGS)

drills-ci: ## the drills CI runs on the lab: leader-kill, rabbit-node-kill, worker-power-cut-*, full-outage
	$(DRILLS_PYTHON) -m drills run ci --inventory $(DRILLS_INVENTORY) --out $(DRILLS_OUT) $(DRILLS_ARGS)

drills-local: ## the drills a one-host dev cluster supports, on a private one in /tmp/drills-dev
	$(DRILLS_PYTHON) -m drills run all --local --out $(DRILLS_OUT) $(DRILLS_ARGS)

drills-unit: ## the drills' checker and parts on synthetic histories (fast, no cluster)
	$(DRILLS_PYTHON) -m pytest -q tests/drills

drills-deps: ## the drills' Python requirements (mk/drills-requirements.txt) into the venv
	$(DRILLS_PYTHON) -m pip install -q -r mk/drills-requirements.txt

drills-list: ## the drill catalogue and what the one-host back end can run
	$(DRILLS_PYTHON) -m drills list
