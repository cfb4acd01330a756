"""TicketBatch: tickets, their dependency graph, and how they are run."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models.batch import (
    BatchPhase,
    ExecutionStrategy,
    Ticket,
    TicketBatch,
    TicketBatchSpec,
)
from agentfleet.models.meta import AgentType, Priority

from .manifests import batch, error_locs, error_messages, ticket


def spec_of(*tickets: dict[str, object], **fields: object) -> TicketBatchSpec:
    return TicketBatchSpec.model_validate(
        {"projectRef": {"name": "demo"}, "tickets": list(tickets), **fields}
    )


def refusal(*tickets: dict[str, object], **fields: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        spec_of(*tickets, **fields)
    return info.value


def test_batch_parses_camel_case_into_snake_case():
    doc = batch(
        tickets=[
            ticket("T-1", priority="high", estimatedComplexity=3, tags=["api"]),
            ticket("T-2", "T-1"),
        ],
        refinement={
            "enabled": True,
            "agentRef": {"name": "refiner"},
            "strategy": "Sequential",
            "batchSize": 5,
        },
        strategy="ParallelBatch",
        batchSize=2,
        parallelLimit=4,
        workflowRef={"name": "flow"},
        agentAssignments={"Development": "dev"},
        execute=False,
    )
    spec = TicketBatch.model_validate(doc).spec
    first, second = spec.tickets
    assert first.raw_description == "do T-1"
    assert first.priority is Priority.HIGH
    assert first.estimated_complexity == 3
    assert first.tags == ["api"]
    assert second.dependencies == ["T-1"]
    assert spec.project_ref.name == "demo"
    assert spec.refinement.enabled is True
    assert spec.refinement.agent_ref is not None
    assert spec.refinement.agent_ref.name == "refiner"
    assert spec.refinement.strategy is ExecutionStrategy.SEQUENTIAL
    assert spec.refinement.batch_size == 5
    assert spec.strategy is ExecutionStrategy.PARALLEL_BATCH
    assert spec.batch_size == 2
    assert spec.parallel_limit == 4
    assert spec.agent_assignments == {AgentType.DEVELOPMENT: "dev"}
    assert spec.execute is False


def test_batch_defaults_are_dependency_aware_three_at_a_time_without_refinement():
    spec = spec_of(ticket("T-1"))
    assert spec.strategy is ExecutionStrategy.DEPENDENCY_AWARE
    assert spec.parallel_limit == 3
    assert spec.batch_size is None
    assert spec.execute is True
    assert spec.workflow_ref is None
    assert spec.refinement.enabled is False
    assert spec.refinement.strategy is None, "the batch's strategy applies"
    only = spec.tickets[0]
    assert only.priority is Priority.MEDIUM
    assert only.estimated_complexity is None
    assert only.dependencies == []


def test_batch_round_trips_through_the_wire_form_with_status():
    doc = batch(
        tickets=[ticket("T-1", priority="critical"), ticket("T-2", "T-1", estimatedComplexity=5)],
        agentAssignments={"CodeReview": "reviewer"},
    )
    doc["status"] = {
        "phase": "Processing",
        "counts": {"total": 2, "running": 1, "awaitingApproval": 1},
        "progress": "0/2",
        "tickets": [{"id": "T-1", "task": "b1-t-1", "phase": "Running"}],
        "refinementAttempts": [
            {"attempt": 1, "agent": "refiner", "runName": "b1-refine-1", "phase": "Succeeded"}
        ],
        "currentWave": 1,
        "startTime": "2024-05-01T12:00:00Z",
    }
    loaded = TicketBatch.model_validate(doc)
    assert loaded.status is not None
    assert loaded.status.counts.awaiting_approval == 1
    assert loaded.status.refinement_attempts[0].run_name == "b1-refine-1"
    wire = loaded.to_wire()
    assert wire["spec"]["projectRef"] == {"name": "demo"}
    assert wire["spec"]["tickets"][1]["estimatedComplexity"] == 5
    assert wire["spec"]["agentAssignments"] == {"CodeReview": "reviewer"}
    assert wire["status"]["counts"]["awaitingApproval"] == 1
    assert wire["status"]["refinementAttempts"][0]["runName"] == "b1-refine-1"
    assert TicketBatch.model_validate(wire) == loaded


def test_project_ref_must_be_an_object():
    error = refusal(ticket("T-1"), projectRef="demo")
    assert ("projectRef",) in error_locs(error)


def test_project_ref_is_required():
    with pytest.raises(ValidationError) as info:
        TicketBatchSpec.model_validate({"tickets": [ticket("T-1")]})
    assert info.value.errors()[0]["type"] == "missing"
    assert ("projectRef",) in error_locs(info.value)


def test_batch_without_tickets_is_refused():
    assert ("tickets",) in error_locs(refusal())


def test_unknown_priority_is_refused_naming_the_ticket_position():
    error = refusal(ticket("T-1"), ticket("T-2", priority="urgent"))
    assert ("tickets", 1, "priority") in error_locs(error)
    assert "'low', 'medium', 'high' or 'critical'" in error_messages(error)


def test_unknown_execution_strategy_is_refused():
    error = refusal(ticket("T-1"), strategy="AllAtOnce")
    assert ("strategy",) in error_locs(error)
    assert "'DependencyAware'" in error_messages(error)


def test_unknown_refinement_strategy_is_refused():
    error = refusal(ticket("T-1"), refinement={"strategy": "Whenever"})
    assert ("refinement", "strategy") in error_locs(error)


def test_unknown_agent_type_in_assignments_is_refused():
    refusal(ticket("T-1"), agentAssignments={"Tester": "qa"})


def test_refinement_with_both_agent_ref_and_agent_type_is_refused():
    error = refusal(
        ticket("T-1"),
        refinement={"enabled": True, "agentRef": {"name": "r"}, "agentType": "Development"},
    )
    assert "refinement takes `agentRef` or `agentType`, not both" in error_messages(error)


@pytest.mark.parametrize("field", ["parallelLimit", "batchSize"])
@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_negative_batch_limits_are_refused(field, value):
    error = refusal(ticket("T-1"), **{field: value})
    assert (field,) in error_locs(error)
    assert "greater than 0" in error_messages(error)


@pytest.mark.parametrize("value", [0, 11, -3])
def test_complexity_outside_one_to_ten_is_refused(value):
    error = refusal(ticket("T-1", estimatedComplexity=value))
    assert ("tickets", 0, "estimatedComplexity") in error_locs(error)


@pytest.mark.parametrize("value", [1, 10])
def test_complexity_at_the_bounds_is_accepted(value):
    assert (
        spec_of(ticket("T-1", estimatedComplexity=value)).tickets[0].estimated_complexity == value
    )


def test_empty_raw_description_is_refused():
    error = refusal({"id": "T-1", "rawDescription": ""})
    assert ("tickets", 0, "rawDescription") in error_locs(error)


def test_duplicate_ticket_ids_are_refused_naming_both_positions():
    error = refusal(ticket("T-1"), ticket("T-2"), ticket("T-1"))
    assert "tickets[2].id: duplicate ticket id 'T-1' (first at tickets[0])" in error_messages(error)


def test_ticket_depending_on_itself_is_refused():
    error = refusal(ticket("T-1"), ticket("T-2", "T-2"))
    assert "tickets[1].dependencies: ticket 'T-2' depends on itself" in error_messages(error)


def test_ticket_depending_on_an_unknown_ticket_is_refused():
    error = refusal(ticket("T-1"), ticket("T-2", "T-9"))
    assert (
        "tickets[1].dependencies: ticket 'T-2' depends on unknown ticket 'T-9'"
        in error_messages(error)
    )


def test_ticket_cycle_is_refused_naming_the_cycle():
    error = refusal(ticket("T-1", "T-3"), ticket("T-2"), ticket("T-3", "T-1"))
    assert "tickets form a dependency cycle: T-1 -> T-3 -> T-1" in error_messages(error)


def test_ticket_cycle_message_is_the_same_every_time():
    tickets = [ticket("A", "C"), ticket("B", "A"), ticket("C", "B"), ticket("D", "C")]
    messages = {error_messages(refusal(*tickets)) for _ in range(3)}
    assert len(messages) == 1
    assert "A -> C -> B -> A" in messages.pop()


def test_ticket_may_depend_on_a_ticket_listed_after_it():
    spec = spec_of(ticket("T-2", "T-1"), ticket("T-1"))
    assert spec.tickets[0].dependencies == ["T-1"]


@pytest.mark.parametrize(
    "ticket_id",
    ["T-1", "PROJ-123", "a", "ABC.def_1", "1", "x" * 63, "T..1", "a-"],
)
def test_valid_ticket_ids_are_accepted(ticket_id):
    assert Ticket.model_validate({"id": ticket_id, "rawDescription": "x"}).id == ticket_id


@pytest.mark.parametrize(
    "ticket_id",
    ["T 1", "a/b", "../x", "..", ".hidden", "-x", "_x", "", "x" * 64, "T-1:2", "tëst"],
)
def test_invalid_ticket_ids_are_refused_with_the_allowed_characters(ticket_id):
    with pytest.raises(ValidationError) as info:
        Ticket.model_validate({"id": ticket_id, "rawDescription": "x"})
    assert "is not a valid ticket id" in error_messages(info.value)
    assert "1-63 letters, digits" in error_messages(info.value)


def test_ticket_id_with_a_trailing_newline_is_refused():
    # `re.match` with `$` accepts "T-1\n"; ids end up in task names, paths and branches.
    with pytest.raises(ValidationError):
        Ticket.model_validate({"id": "T-1\n", "rawDescription": "x"})


def test_invalid_ticket_id_in_dependencies_is_refused():
    with pytest.raises(ValidationError) as info:
        Ticket.model_validate({"id": "T-2", "rawDescription": "x", "dependencies": ["../T-1"]})
    assert ("dependencies", 0) in error_locs(info.value)


def test_two_ticket_ids_becoming_the_same_task_name_are_refused_naming_both():
    with pytest.raises(ValidationError) as info:
        TicketBatch.model_validate(batch("b1", tickets=[ticket("T_1"), ticket("t-1")]))
    message = error_messages(info.value)
    assert "tickets 'T_1' and 't-1' both become task 'b1-t-1'" in message
    assert "rename one of them" in message


def test_ticket_ids_differing_only_in_case_collide_as_task_names():
    spec = spec_of(ticket("ABC-1"), ticket("abc-1"))
    with pytest.raises(ValueError, match="both become task 'b1-abc-1'"):
        spec.check_task_names("b1")


def test_distinct_task_names_pass_the_check():
    spec_of(ticket("T-1"), ticket("T-2"), ticket("T.3")).check_task_names("b1")


def test_unknown_ticket_field_is_refused():
    error = refusal(ticket("T-1", title="x"))
    errors = {tuple(e["loc"]): e["type"] for e in error.errors()}
    assert errors[("tickets", 0, "title")] == "extra_forbidden"


@pytest.mark.parametrize("name", ["B1", "batch_1"])
def test_batch_with_a_bad_name_is_refused(name):
    with pytest.raises(ValidationError) as info:
        TicketBatch.model_validate(batch(name))
    assert ("metadata", "name") in error_locs(info.value)


@pytest.mark.parametrize(
    ("phase", "terminal"),
    [
        (BatchPhase.PENDING, False),
        (BatchPhase.REFINING, False),
        (BatchPhase.REFINED, False),
        (BatchPhase.PROCESSING, False),
        (BatchPhase.SUCCEEDED, True),
        (BatchPhase.FAILED, True),
    ],
)
def test_only_succeeded_and_failed_batches_are_terminal(phase, terminal):
    assert phase.terminal is terminal
