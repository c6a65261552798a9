"""Prometheus metrics of one gateway."""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()
REQUESTS = Counter("taskforce_http_requests_total", "HTTP requests", ["route", "code"], registry=registry)
SUBMITS = Counter("taskforce_submits_total", "job submissions by outcome", ["outcome"], registry=registry)
PUBLISH_SECONDS = Histogram("taskforce_publish_confirm_seconds", "publish-to-confirm latency of commands",
                            registry=registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
SSE_STREAMS = Gauge("taskforce_sse_streams", "open SSE streams", registry=registry)
EVENTS = Gauge("taskforce_feed_events_received", "events received on the gateway feed", registry=registry)
VIEW_SIZE = Gauge("taskforce_view_jobs", "jobs in the gateway's local view", registry=registry)
