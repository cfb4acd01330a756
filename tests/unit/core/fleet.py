"""A small fleet in memory and a virtual-time harness around the real `decide()`.

Resources are built from the wire-form builders of the model tests, validated by the real
models, and handed to `Simulation`. Helpers here read what a test asserts on: phases, run
intervals, the actions of one `decide()` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agentfleet.core.actions import Action, RunRequest
from agentfleet.core.naming import run_name, task_name
from agentfleet.models import KINDS
from agentfleet.models.meta import Condition, Resource
from agentfleet.models.run import AttemptPhase, RunPhase, RunResult
from agentfleet.simulate import EPOCH, Simulation

from ..models import manifests as m

Doc = dict[str, Any]
Duration = float | Mapping[str, float] | Callable[[RunRequest], float]


def build(doc: Doc) -> Resource[Any, Any]:
    return KINDS[doc["kind"]].model_validate(doc)


def dev(name: str = "dev", **spec: Any) -> Doc:
    return m.agent(name, **spec)


def qa(name: str = "qa", **spec: Any) -> Doc:
    return m.agent(name, agentType="QualityAssurance", **spec)


def docs_agent(name: str = "writer", **spec: Any) -> Doc:
    return m.agent(name, agentType="Documentation", **spec)


def stage(name: str, *deps: str, **fields: Any) -> Doc:
    return m.stage(name, *deps, **fields)


def ticket(id_: str, *deps: str, **fields: Any) -> Doc:
    return m.ticket(id_, *deps, **fields)


def fleet(
    tickets: Sequence[Doc] | None = None,
    *,
    stages: Sequence[Doc] | None = None,
    agents: Sequence[Doc] | None = None,
    flow: Mapping[str, Any] | None = None,
    batch: str = "b1",
    extra: Iterable[Doc] = (),
    **batch_spec: Any,
) -> list[Resource[Any, Any]]:
    """Project `demo`, workflow `flow`, the agents, and one batch running that workflow."""
    docs = [
        m.project(),
        *(agents if agents is not None else [dev()]),
        m.workflow("flow", list(stages) if stages is not None else None, **dict(flow or {})),
        m.batch(
            batch,
            list(tickets) if tickets is not None else None,
            workflowRef={"name": "flow"},
            **batch_spec,
        ),
        *extra,
    ]
    return [build(d) for d in docs]


def durations(value: Duration) -> Callable[[RunRequest], float]:
    """A constant, a table keyed by task name or run name (default key "*"), or a callable."""
    if callable(value):
        return value
    if isinstance(value, Mapping):
        table = dict(value)

        def lookup(run: RunRequest) -> float:
            for key in (run.name, run.task or "", "*"):
                if key in table:
                    return table[key]
            return 60.0

        return lookup
    constant = float(value)
    return lambda _run: constant


def simulation(
    resources: Sequence[Resource[Any, Any]],
    duration: Duration = 60.0,
    failing: Iterable[str] | Callable[[RunRequest], bool] = (),
) -> Simulation:
    """A Simulation whose runs succeed unless named in `failing` (run names), or it says so."""
    if callable(failing):
        fails = failing
    else:
        names = set(failing)

        def fails(run: RunRequest) -> bool:
            return run.name in names

    return Simulation.from_resources(
        resources, duration=durations(duration), outcome=lambda run: not fails(run)
    )


def task(ticket_id: str, batch: str = "b1") -> str:
    return task_name(batch, ticket_id)


def run(ticket_id: str, stage_name: str = "implement", attempt: int = 1, batch: str = "b1") -> str:
    return run_name(task(ticket_id, batch), stage_name, attempt)


def seconds(moment: datetime | None) -> float | None:
    return None if moment is None else (moment - EPOCH).total_seconds()


def started(sim: Simulation, name: str) -> float:
    return sim.runs[name].started


def ended(sim: Simulation, name: str) -> float:
    """When the run really ended: its planned end, or earlier when it was cancelled."""
    end = seconds(sim.runs[name].observed.finish_time)
    assert end is not None, f"run {name} has not ended"
    return end


def task_phase(sim: Simulation, name: str) -> str:
    status = sim.tasks[name].status
    return str(status.phase) if status is not None and status.phase else "Pending"


def task_phases(sim: Simulation) -> dict[str, str]:
    return {name: task_phase(sim, name) for name in sim.tasks}


def batch_phase(sim: Simulation, name: str = "b1") -> str:
    status = sim.batches[name].status
    return str(status.phase) if status is not None and status.phase else "Pending"


def batch_summary(sim: Simulation, name: str = "b1") -> Condition:
    """The batch's `Succeeded` condition: its reason and message say why it is where it is."""
    status = sim.batches[name].status
    assert status is not None
    condition = status.condition("Succeeded")
    assert condition is not None
    return condition


def batch_reason(sim: Simulation, name: str = "b1") -> str:
    return batch_summary(sim, name).reason


def runs_of(sim: Simulation, task_name_: str, stage_name: str | None = None) -> list[str]:
    """The task's runs (of one stage, if given), in the order they started."""
    return [
        name
        for name, r in sorted(sim.runs.items(), key=lambda kv: (kv[1].started, kv[0]))
        if r.request.task == task_name_ and (stage_name is None or r.request.stage == stage_name)
    ]


def start_order(sim: Simulation) -> list[str]:
    """Tasks by the start of their first run (ties broken by name)."""
    first: dict[str, float] = {}
    for r in sim.runs.values():
        if r.request.task is not None:
            first[r.request.task] = min(first.get(r.request.task, r.started), r.started)
    return sorted(first, key=lambda t: (first[t], t))


def max_concurrency(sim: Simulation, keep: Callable[[RunRequest], bool] = lambda _r: True) -> int:
    """The most runs (among those `keep` selects) in flight at any instant of the run history."""
    edges: list[tuple[float, int]] = []
    for r in sim.runs.values():
        if not keep(r.request):
            continue
        end = seconds(r.observed.finish_time)
        edges.append((r.started, 1))
        edges.append((float("inf") if end is None else end, -1))
    # Ends sort before starts at the same instant: a slot freed at t may be reused at t.
    edges.sort()
    busy = peak = 0
    for _t, delta in edges:
        busy += delta
        peak = max(peak, busy)
    return peak


def annotate(sim: Simulation, name: str, key: str, value: str, kind: str = "AgentTask") -> None:
    """What a human (or `agentfleet approve|retry|skip|abort`) does: set one annotation."""
    store: dict[str, Any] = sim.tasks if kind == "AgentTask" else sim.batches
    obj = store[name]
    meta = obj.metadata.model_copy(update={"annotations": {**obj.metadata.annotations, key: value}})
    store[name] = obj.model_copy(update={"metadata": meta})


def finish_run(sim: Simulation, name: str, ok: bool = True, **result: Any) -> None:
    """End a run now with a hand-written result (refined tickets, reasons), as a driver would."""
    r = sim.runs[name]
    r.observed = r.observed.model_copy(
        update={
            "phase": RunPhase.SUCCEEDED if ok else RunPhase.FAILED,
            "finish_time": sim.now,
            "exit_code": 0 if ok else 1,
            "result": RunResult.model_validate(
                {"outcome": AttemptPhase.SUCCEEDED if ok else AttemptPhase.FAILED, **result}
            ),
        }
    )


def of_type(actions: Iterable[Action], cls: type[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, cls)]
