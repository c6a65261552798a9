"""The local multi-node lab: Debian 12 nodes on systemd-nspawn behind one bridge.

`python -m lab up` builds (once) a cached base image, boots the nodes on
overlays of it, and writes an Ansible inventory for them. `lab.faults` holds
the fault injectors the drills use: power cuts, pauses and partitions.
"""
