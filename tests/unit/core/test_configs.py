"""Projects, agents and workflows get a status: Ready, what is missing, runs in flight."""

from __future__ import annotations

from agentfleet.core.actions import SetStatus
from agentfleet.core.reconcile import decide
from agentfleet.models.project import Project

from .fleet import build, dev, fleet, of_type, simulation, ticket


def statuses(actions: list[object], kind: str) -> dict[str, object]:
    return {a.name: a.status for a in of_type(actions, SetStatus) if a.kind == kind}


def test_an_agent_status_counts_its_runs_in_flight_against_its_cap() -> None:
    sim = simulation(
        fleet([ticket("T-1"), ticket("T-2"), ticket("T-3")], agents=[dev(maxParallelTasks=2)]),
        duration=30,
    )
    sim.settle()
    agent = sim.agents["dev"]
    assert agent.status is not None
    assert agent.status.phase == "Ready"
    assert agent.status.active_runs == 2
    assert agent.status.condition("Ready").message == "2 run(s) in flight of at most 2"
    sim.run()
    assert sim.agents["dev"].status.active_runs == 0


def test_a_project_whose_default_workflow_is_missing_is_pending_and_says_which() -> None:
    resources = fleet([ticket("T-1")])
    project = next(r for r in resources if isinstance(r, Project))
    spec = project.spec.model_dump(by_alias=True, exclude_none=True)
    orphan = build(
        {
            "apiVersion": project.api_version,
            "kind": "Project",
            "metadata": {"name": "orphan"},
            "spec": {**spec, "defaultWorkflowRef": {"name": "nowhere"}},
        }
    )
    sim = simulation([*resources, orphan])
    sim.settle()
    status = sim.projects["orphan"].status
    assert status.phase == "Pending"
    ready = status.condition("Ready")
    assert (ready.status, ready.reason) == ("False", "WorkflowNotFound")
    assert "nowhere" in ready.message
    assert sim.projects["demo"].status.phase == "Ready"
    assert sim.workflows["flow"].status.phase == "Ready"


def test_config_statuses_are_written_once_not_every_round() -> None:
    sim = simulation(fleet([ticket("T-1")]))
    sim.settle()
    again = decide(sim.snapshot())
    for kind in ("AgentConfig", "Workflow", "Project"):
        assert statuses(again, kind) == {}, kind
