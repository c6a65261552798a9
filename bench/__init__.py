"""`make bench`: TaskForce beside Celery and the broker's own ceiling, on the same lab cluster.

Modules: `lab` (nodes, units, CPU and memory readings over SSH), `stats` (percentiles,
windowed throughput, CPU per 1,000 jobs), `driver` (closed-loop saturation and paced load),
`systems/` (raw, taskforce, celery: each submits, runs consumers on the worker nodes and
reports per-job timestamps), `sse` (gateway memory under open streams), `profile` (py-spy
on the leader and a gateway), `report` (report.md, results.json, plots), `run` (the order).
"""
