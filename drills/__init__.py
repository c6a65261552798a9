"""Failover drills that judge themselves.

A drill runs a steady workload against a TaskForce cluster, injects faults on a schedule,
records a history of everything the clients saw, and hands the history to a checker, a pure
function that counts accepted, completed, lost, duplicated, unexpected and stuck jobs and
measures how long each fault took to recover from. Modelled on Jepsen.

    python -m drills list
    python -m drills run leader-kill --local
    python -m drills run leader-kill --inventory inventories/lab
    python -m drills run all --inventory inventories/lab      # the whole catalogue
"""
