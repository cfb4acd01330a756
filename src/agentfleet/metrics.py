"""Every Prometheus metric of agentfleet, defined once.

Names follow `agentfleet_<object>_<what>_<unit>`; labels stay few and bounded (an agent
type, a phase, an outcome, a verb), never a task or batch name, which would grow without end.
The dashboards and alerts under charts/agentfleet/files/ query only what is defined here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
"""agentfleet's own registry: what `/metrics` serves, free of other libraries' metrics."""

_RUN_SECONDS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

BATCHES = Gauge(
    "agentfleet_batches",
    "TicketBatches by phase, as the driver last saw them.",
    ["phase"],
    registry=REGISTRY,
)
TASKS = Gauge(
    "agentfleet_tasks",
    "AgentTasks by phase, as the driver last saw them.",
    ["phase"],
    registry=REGISTRY,
)
RUNS_STARTED = Counter(
    "agentfleet_runs_started_total",
    "Runs (Pods or local processes) the driver started.",
    ["agent_type"],
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "agentfleet_runs_finished_total",
    "Runs that ended, by outcome (Succeeded or Failed).",
    ["agent_type", "outcome"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "agentfleet_run_duration_seconds",
    "Wall time of a run, from start to end.",
    ["agent_type"],
    buckets=_RUN_SECONDS,
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "agentfleet_reconcile_duration_seconds",
    "One observe-decide-apply round of a driver, API calls included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
KUBERNETES_REQUESTS = Counter(
    "agentfleet_kubernetes_requests_total",
    "Requests the operator made to the Kubernetes API (watches excluded), by verb and code.",
    ["verb", "code"],
    registry=REGISTRY,
)


def set_phase_counts(gauge: Gauge, counts: dict[str, int], phases: list[str]) -> None:
    """Set every phase, zeros included: a phase that empties must read 0, not its last value."""
    for phase in phases:
        gauge.labels(phase=phase).set(counts.get(phase, 0))
