"""Programs the benchmark copies to the worker nodes and runs there as transient units."""
