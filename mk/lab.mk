# The nspawn lab and the infrastructure roles. Included by the top Makefile.
# Host packages the lab needs (root): systemd-container debootstrap nftables iproute2 openssh-client

LAB_PYTHON ?= .venv/bin/python
LAB_ANSIBLE_PLAYBOOK ?= .venv/bin/ansible-playbook
LAB_INVENTORY ?= inventories/lab
LAB_NODES ?=

.PHONY: lab-deps lab-up lab-down lab-status lab-unit lab-site lab-site-idempotent lab-cluster-test

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

lab-site: ## roll the infrastructure out onto the lab
	ANSIBLE_CONFIG=ansible.cfg $(LAB_ANSIBLE_PLAYBOOK) -i $(LAB_INVENTORY) playbooks/site.yml

lab-cluster-test: ## testinfra checks against the running lab
	$(LAB_PYTHON) -m pytest -q tests/cluster
