# Day-2 operations (docs/operations.md). Included by the top Makefile.
#
#   make upgrade OPS_INVENTORY=inventories/prod          rolling upgrade to build/wheelhouse
#   make upgrade-build UPGRADE_VERSION=0.1.1             a copy of the app with that version, as a wheelhouse
#   make upgrade-proof UPGRADE_VERSION=0.1.1             upgrade the lab to it under the drills' workload
#   make lab-scale-out SCALE_NODE=worker3                 boot a lab worker node and add it (scale.yml)
#   make lab-scale-out SCALE_NODE=core4,core5             the same for two core nodes (RabbitMQ, Raft, gateway)
#   make lab-scale-in SCALE_NODE=worker3                  drain it, remove it, configs and firewalls forget it
#   make scale-proof                                      no-op throughput with 2 worker nodes, 3, then 2 again
#   make scale-core-proof                                 add core4,core5 and take them out again, under load
#
# Commands that touch the lab belong under the shared lock when other people use it:
#   flock /work/lab.lock make upgrade-proof ...

OPS_PYTHON    ?= .venv/bin/python
OPS_PLAYBOOK  ?= ANSIBLE_CONFIG=playbooks/ansible.cfg .venv/bin/ansible-playbook
OPS_INVENTORY ?= inventories/lab
OPS_ARGS      ?=
UPGRADE_VERSION ?=
UPGRADE_WHEELHOUSE ?= build/upgrade-wheelhouse
SCALE_NODE    ?= worker3
SCALE_JOBS    ?= 2000
SCALE_ARGS    ?=
CORE_NODES    ?= core4,core5
OPS_OUT       ?= reports/ops-$(shell date +%Y%m%d-%H%M%S)

.PHONY: upgrade upgrade-build upgrade-proof ops-stop ops-start ops-teardown lab-scale-out lab-scale-in scale-proof scale-core-proof

upgrade: ## rolling upgrade (playbooks/upgrade.yml) of OPS_INVENTORY to the wheelhouse in build/ (OPS_ARGS for -e ...)
	$(OPS_PLAYBOOK) -i $(OPS_INVENTORY) playbooks/upgrade.yml $(OPS_ARGS)

upgrade-build: ## the committed app (HEAD) with UPGRADE_VERSION as its version, as a wheelhouse in build/upgrade-wheelhouse
	@test -n "$(UPGRADE_VERSION)" || { echo "give UPGRADE_VERSION=x.y.z"; exit 2; }
	@test -d build/wheelhouse || { echo "no build/wheelhouse: run make wheelhouse first"; exit 2; }
	rm -rf build/upgrade-src $(UPGRADE_WHEELHOUSE) && mkdir -p build/upgrade-src
	git archive HEAD pyproject.toml app/taskforce | tar -x -C build/upgrade-src
	sed -i 's/^version = ".*"/version = "$(UPGRADE_VERSION)"/' build/upgrade-src/pyproject.toml
	sed -i 's/^__version__ = ".*"/__version__ = "$(UPGRADE_VERSION)"/' build/upgrade-src/app/taskforce/__init__.py
	@# the dependencies are the current ones: only the app's wheel differs
	cp -r build/wheelhouse $(UPGRADE_WHEELHOUSE) && rm -f $(UPGRADE_WHEELHOUSE)/taskforce-*.whl
	$(OPS_PYTHON) -m pip wheel -q --no-deps --wheel-dir $(UPGRADE_WHEELHOUSE) build/upgrade-src

upgrade-proof: upgrade-build ## upgrade the lab to UPGRADE_VERSION while the drills' workload runs; the checker judges
	$(OPS_PYTHON) -m drills.under_load --inventory $(OPS_INVENTORY) --name upgrade --out $(OPS_OUT)-upgrade -- \
	  env ANSIBLE_CONFIG=playbooks/ansible.cfg .venv/bin/ansible-playbook -i $(OPS_INVENTORY) playbooks/upgrade.yml \
	  -e taskforce_app_wheelhouse_dir=$(CURDIR)/$(UPGRADE_WHEELHOUSE) $(OPS_ARGS)

ops-stop: ## stop the whole cluster in a safe order (playbooks/stop.yml)
	$(OPS_PLAYBOOK) -i $(OPS_INVENTORY) playbooks/stop.yml $(OPS_ARGS)

ops-start: ## start a stopped cluster in a safe order, then verify (playbooks/start.yml)
	$(OPS_PLAYBOOK) -i $(OPS_INVENTORY) playbooks/start.yml $(OPS_ARGS)

ops-teardown: ## remove TaskForce and its data from OPS_INVENTORY's hosts (asks for a confirmation)
	$(OPS_PLAYBOOK) -i $(OPS_INVENTORY) playbooks/teardown.yml $(OPS_ARGS)

lab-scale-out: ## boot lab node(s) SCALE_NODE (workers, or core nodes two at a time) and add them (playbooks/scale.yml)
	$(OPS_PYTHON) -m lab add $(SCALE_NODE)
	$(OPS_PLAYBOOK) -i inventories/lab playbooks/scale.yml -e scale_nodes=$(SCALE_NODE)

lab-scale-in: ## drain lab node(s) SCALE_NODE, take them out of the cluster and the lab; configs and firewalls forget them
	$(OPS_PLAYBOOK) -i inventories/lab playbooks/remove-node.yml -e scale_remove=$(SCALE_NODE)
	for n in $$(echo $(SCALE_NODE) | tr , ' '); do $(OPS_PYTHON) -m lab remove $$n || exit 1; done
	$(OPS_PLAYBOOK) -i inventories/lab playbooks/scale.yml

scale-proof: ## no-op throughput on the lab with its worker nodes, with SCALE_NODE added, and after its removal, in one run
	$(OPS_PYTHON) -m drills.throughput --inventory inventories/lab --jobs $(SCALE_JOBS) --out $(OPS_OUT)-scale/throughput.json $(SCALE_ARGS) \
	  --step "$(MAKE) --no-print-directory lab-scale-out SCALE_NODE=$(SCALE_NODE)" \
	  --step "$(MAKE) --no-print-directory lab-scale-in SCALE_NODE=$(SCALE_NODE)"

scale-core-proof: ## add the core nodes CORE_NODES to the lab and take them out again while the drills' workload runs; the checker judges
	$(OPS_PYTHON) -m drills.under_load --inventory inventories/lab --name scale-core --out $(OPS_OUT)-scale-core -- \
	  bash -c 't0=$$(date +%s); $(MAKE) --no-print-directory lab-scale-out SCALE_NODE=$(CORE_NODES) || exit 1; t1=$$(date +%s); \
	    $(MAKE) --no-print-directory lab-scale-in SCALE_NODE=$(CORE_NODES) || exit 1; t2=$$(date +%s); \
	    echo "scale-core: added $(CORE_NODES) in $$((t1 - t0)) s, removed them in $$((t2 - t1)) s"'
