"""Runs: results written by the runner, runs observed by drivers, attempts in statuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models.meta import Priority
from agentfleet.models.run import (
    Attempt,
    AttemptPhase,
    ObservedRun,
    RunKind,
    RunPhase,
    RunResult,
    TokenUsage,
)


@pytest.mark.parametrize(
    ("phase", "finished"),
    [
        (RunPhase.PENDING, False),
        (RunPhase.RUNNING, False),
        (RunPhase.SUCCEEDED, True),
        (RunPhase.FAILED, True),
    ],
)
def test_run_is_finished_once_it_succeeded_or_failed(phase, finished):
    assert phase.finished is finished


def test_token_usage_total_sums_every_kind():
    usage = TokenUsage.model_validate(
        {"input": 10, "output": 5, "cacheRead": 3, "cacheCreation": 2}
    )
    assert usage.total == 20


def test_negative_token_counts_are_refused():
    with pytest.raises(ValidationError):
        TokenUsage(input=-1)


def test_run_result_parses_and_round_trips_with_refined_tickets():
    raw = {
        "outcome": "Succeeded",
        "exitCode": 0,
        "criteria": [{"type": "tests_pass", "passed": True, "message": "12 passed"}],
        "commit": "abc123",
        "diffStat": {"filesChanged": 2, "insertions": 10, "deletions": 1},
        "tokens": {"input": 100, "output": 50},
        "costUsd": 0.5,
        "durationSeconds": 12.5,
        "refinedTickets": [
            {"id": "T-1", "title": "Add login", "complexity": 3, "priority": "high"}
        ],
    }
    result = RunResult.model_validate(raw)
    assert result.outcome is AttemptPhase.SUCCEEDED
    assert result.diff_stat is not None
    assert result.diff_stat.files_changed == 2
    assert result.refined_tickets is not None
    assert result.refined_tickets[0].priority is Priority.HIGH
    assert RunResult.model_validate(result.to_wire()) == result


@pytest.mark.parametrize(
    "raw",
    [
        {"outcome": "Running", "costUsd": -0.1},
        {"outcome": "Running", "durationSeconds": -1},
        {"outcome": "Maybe"},
        {"outcome": "Succeeded", "refinedTickets": [{"id": "T-1", "title": ""}]},
        {"outcome": "Succeeded", "refinedTickets": [{"id": "T-1", "title": "x", "complexity": 11}]},
    ],
)
def test_invalid_run_results_are_refused(raw):
    with pytest.raises(ValidationError):
        RunResult.model_validate(raw)


def test_observed_run_defaults_to_a_stage_run():
    run = ObservedRun.model_validate(
        {
            "name": "b1-t-1-implement-1",
            "stage": "implement",
            "attempt": 1,
            "agent": "dev",
            "phase": "Running",
        }
    )
    assert run.kind is RunKind.STAGE
    assert run.result is None
    assert ObservedRun.model_validate(run.to_wire()) == run


def test_attempt_starts_running():
    attempt = Attempt(attempt=1, agent="dev", run_name="b1-t-1-implement-1")
    assert attempt.phase is AttemptPhase.RUNNING
    assert attempt.to_wire() == {
        "attempt": 1,
        "agent": "dev",
        "runName": "b1-t-1-implement-1",
        "phase": "Running",
        "reason": "",
        "message": "",
        "criteria": [],
    }
