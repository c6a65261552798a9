# The nspawn lab and the infrastructure roles. Included by the top Makefile.
# Host packages the lab needs (root): systemd-container debootstrap nftables iproute2 openssh-client

LAB_PYTHON ?= .venv/bin/python
LAB_ANSIBLE_PLAYBOOK ?= .venv/bin/ansible-playbook
LAB_INVENTORY ?= inventories/lab
LAB_NODES ?=

.PHONY: lab-deps lab-up lab-down lab-status lab-unit lab-site lab-check lab-cluster-test lab-molecule

lab-deps: ## install the lab's Python requirements into the venv
	$(LAB_PYTHON) -m pip install -q -r mk/lab-requirements.txt

lab-up: ## boot the lab (first run builds and caches the image)
	$(LAB_PYTHON) -m lab up $(if $(LAB_NODES),--nodes $(LAB_NODES))

lab-down: ## remove every node, the bridge and the nft table
	$(LAB_PYTHON) -m lab down

lab-status: ## nodes, PIDs, addresses, memory, partitions
	$(LAB_PYTHON) -m lab status --probe

lab-unit: ## fast tests of the lab's own logic (no root)
	$(LAB_PYTHON) -m pytest -q tests/lab

lab-site: ## roll TaskForce out onto the lab (needs build/wheelhouse and build/taskforce-worker.jar)
	ANSIBLE_CONFIG=playbooks/ansible.cfg $(LAB_ANSIBLE_PLAYBOOK) -i $(LAB_INVENTORY) playbooks/site.yml

lab-check: ## pre-checks only: inventory shape, OS, RabbitMQ versions, secrets
	ANSIBLE_CONFIG=playbooks/ansible.cfg $(LAB_ANSIBLE_PLAYBOOK) -i $(LAB_INVENTORY) playbooks/check.yml

lab-cluster-test: ## testinfra checks against the running lab
	$(LAB_PYTHON) -m pytest -q tests/cluster

LAB_MOLECULE_ROLES ?= pre_checks common rabbitmq orchestrator gateway worker_python worker_java

lab-molecule: ## each role's molecule scenario on fresh lab nodes (root)
	@set -e; for role in $(LAB_MOLECULE_ROLES); do \
	  echo "== molecule: $$role"; \
	  (cd roles/$$role && PATH=$(CURDIR)/.venv/bin:$$PATH molecule test); \
	done
