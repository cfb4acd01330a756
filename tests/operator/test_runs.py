"""Reading a run's Pod back as the ObservedRun the core decides on, one rule per test.

Pods come from `build_pod`, statuses from tests/support/kubelet.py, as a node writes them.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from agentfleet.core.naming import refinement_run_name
from agentfleet.models.run import (
    AttemptPhase,
    ObservedRun,
    RefinedTicket,
    RunKind,
    RunPhase,
    RunResult,
)
from agentfleet.operator.metadata import AGENT_LABEL
from agentfleet.operator.pods import RUN_SPEC_ANNOTATION
from agentfleet.operator.runs import (
    STOP_MESSAGE_ANNOTATION,
    STOP_REASON_ANNOTATION,
    observe_pod,
    parse_result,
    parse_time,
    stop_patch,
)
from agentfleet.runner.result import TERMINATION_MESSAGE_BYTES, fit, to_json
from tests.operator.test_pods import BATCH, TASK, full_pod, make_run, pod_for
from tests.support import kubelet

Obj = dict[str, Any]
CREATED = datetime(2026, 11, 25, 3, 21, 3, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=5)
GRACE = 120.0

RESULT = RunResult(
    outcome=AttemptPhase.SUCCEEDED,
    reason="Succeeded",
    message="all criteria passed",
    exit_code=0,
    commit="0123abc",
    tokens={"input": 1200, "output": 300},
    cost_usd=0.42,
)
CRITERIA_FAILED = RunResult(
    outcome=AttemptPhase.FAILED,
    reason="CriteriaFailed",
    message="1 of 2 criteria failed: tests",
    exit_code=0,
    criteria=[{"type": "tests", "passed": False, "message": "2 failed"}],
    tokens={"input": 900},
    cost_usd=0.12,
)


def created(pod: Obj, at: datetime = CREATED) -> Obj:
    """The Pod as the API server returns it: with its creationTimestamp."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["creationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pod


def with_status(pod: Obj, status: Obj) -> Obj:
    return {**pod, "status": status}


def observe(pod: Obj, now: datetime = NOW, grace: float = GRACE) -> ObservedRun:
    run = observe_pod(pod, now=now, image_pull_grace_seconds=grace)
    assert run is not None
    return run


def stopped(pod: Obj, reason: str = "Cancelled", message: str = "the batch was cancelled") -> Obj:
    pod = copy.deepcopy(pod)
    pod["metadata"]["annotations"].update(stop_patch(reason, message)["metadata"]["annotations"])
    return pod


@pytest.fixture
def pod() -> Obj:
    return created(full_pod())


# Identity


def test_identity_comes_from_the_run_spec_annotation(pod: Obj) -> None:
    pod["metadata"]["labels"] = {}
    run = observe(pod)
    assert (run.name, run.kind, run.batch, run.task) == (
        pod["metadata"]["name"],
        "Stage",
        BATCH,
        TASK,
    )
    assert (run.stage, run.attempt, run.agent) == ("develop", 2, "dev")


def test_annotation_wins_over_labels_that_were_shortened(pod: Obj) -> None:
    pod["metadata"]["labels"][AGENT_LABEL] = "dev-1a2b3c4d"
    assert observe(pod).agent == "dev"


@pytest.mark.parametrize("annotation", [None, "{not json", "[1, 2]", '{"name": 3}'])
def test_identity_falls_back_to_labels_when_the_annotation_is_missing_or_unreadable(
    pod: Obj, annotation: str | None
) -> None:
    annotations = pod["metadata"]["annotations"]
    if annotation is None:
        del annotations[RUN_SPEC_ANNOTATION]
    else:
        annotations[RUN_SPEC_ANNOTATION] = annotation
    run = observe(pod)
    assert (run.name, run.task, run.stage, run.attempt, run.agent) == (
        pod["metadata"]["name"],
        TASK,
        "develop",
        2,
        "dev",
    )


def test_refinement_pod_read_from_labels_alone_is_a_refinement() -> None:
    run = make_run(
        name=refinement_run_name(BATCH, 1),
        kind=RunKind.REFINEMENT,
        task=None,
        stage="refine",
        attempt=1,
    )
    pod = pod_for(run=run)
    del pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION]
    observed = observe(pod)
    assert (observed.kind, observed.task, observed.attempt) == (RunKind.REFINEMENT, None, 1)


def test_pod_without_our_annotation_or_labels_is_not_a_run() -> None:
    other = {
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "status": {"phase": "Running"},
    }
    assert observe_pod(other, now=NOW, image_pull_grace_seconds=GRACE) is None
    assert observe_pod({}, now=NOW, image_pull_grace_seconds=GRACE) is None


def test_pod_missing_the_agent_everywhere_is_not_a_run(pod: Obj) -> None:
    spec = json.loads(pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION])
    del spec["agentName"]
    pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION] = json.dumps(spec)
    del pod["metadata"]["labels"][AGENT_LABEL]
    assert observe_pod(pod, now=NOW, image_pull_grace_seconds=GRACE) is None


def test_unreadable_attempt_label_is_not_a_run(pod: Obj) -> None:
    del pod["metadata"]["annotations"][RUN_SPEC_ANNOTATION]
    pod["metadata"]["labels"]["agentfleet.dev/attempt"] = "two"
    assert observe_pod(pod, now=NOW, image_pull_grace_seconds=GRACE) is None


# Stop


def test_stop_patch_records_why_and_lowers_the_deadline() -> None:
    assert stop_patch("Cancelled", "by alice", active_deadline_seconds=5) == {
        "metadata": {
            "annotations": {
                STOP_REASON_ANNOTATION: "Cancelled",
                STOP_MESSAGE_ANNOTATION: "by alice",
            }
        },
        "spec": {"activeDeadlineSeconds": 5},
    }
    assert stop_patch("Cancelled", "")["spec"] == {"activeDeadlineSeconds": 1}


def test_stopped_pod_still_running_stays_running(pod: Obj) -> None:
    run = observe(with_status(stopped(pod), kubelet.running(pod)))
    assert (run.phase, run.reason) == (RunPhase.RUNNING, "")


def test_stop_reason_wins_over_deadline_exceeded(pod: Obj) -> None:
    run = observe(with_status(stopped(pod), kubelet.deadline_exceeded(pod)))
    assert (run.phase, run.reason, run.message) == (
        RunPhase.FAILED,
        "Cancelled",
        "the batch was cancelled",
    )
    assert run.exit_code == kubelet.SIGKILL_EXIT


def test_stop_reason_wins_over_a_pod_that_succeeded_meanwhile_and_keeps_its_costs(
    pod: Obj,
) -> None:
    run = observe(
        with_status(
            stopped(pod, "Superseded", "a newer attempt runs"), kubelet.succeeded(pod, RESULT)
        )
    )
    assert (run.phase, run.reason, run.message) == (
        RunPhase.FAILED,
        "Superseded",
        "a newer attempt runs",
    )
    assert run.result is not None
    assert (run.result.outcome, run.result.reason) == (AttemptPhase.FAILED, "Superseded")
    assert (run.result.cost_usd, run.result.commit) == (0.42, "0123abc")


# Pending


@pytest.mark.parametrize("status", [None, {}, {"phase": "Pending"}])
def test_pod_not_yet_seen_by_a_kubelet_is_pending(pod: Obj, status: Obj | None) -> None:
    if status is not None:
        pod["status"] = status
    run = observe(pod)
    assert (run.phase, run.start_time, run.finish_time) == (RunPhase.PENDING, None, None)


def test_unschedulable_pod_stays_pending_long_past_the_grace(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.unschedulable(pod)), now=NOW + timedelta(days=1))
    assert (run.phase, run.reason) == (RunPhase.PENDING, "")


def test_image_pull_backoff_within_the_grace_stays_pending(pod: Obj) -> None:
    status = kubelet.image_pull_backoff(pod)
    just_before = CREATED + timedelta(seconds=GRACE - 1)
    assert observe(with_status(pod, status), now=just_before).phase == RunPhase.PENDING


@pytest.mark.parametrize(
    "reason",
    ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "CreateContainerError"],
)
def test_start_failure_past_the_grace_fails_naming_container_image_and_kubelet_message(
    pod: Obj, reason: str
) -> None:
    status = kubelet.image_pull_backoff(pod, reason)
    waiting = status["containerStatuses"][0]["state"]["waiting"]["message"]
    # The runner could start once the init container was done: the grace counts from then.
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    ready = parse_time(initialized["lastTransitionTime"])
    assert ready is not None
    assert ready > CREATED
    early = observe(with_status(pod, status), now=ready + timedelta(seconds=GRACE - 1))
    assert early.phase == RunPhase.PENDING
    run = observe(with_status(pod, status), now=ready + timedelta(seconds=GRACE))
    assert (run.phase, run.reason) == (RunPhase.FAILED, reason)
    assert "container runner" in run.message
    assert "ghcr.io/example/claude:1" in run.message
    assert waiting in run.message
    assert run.finish_time == ready + timedelta(seconds=GRACE)


def test_invalid_image_name_fails_at_once(pod: Obj) -> None:
    status = kubelet.image_pull_backoff(pod, "InvalidImageName")
    run = observe(with_status(pod, status), now=CREATED, grace=3600)
    assert (run.phase, run.reason) == (RunPhase.FAILED, "InvalidImageName")


def test_init_container_that_cannot_pull_its_image_is_named(pod: Obj) -> None:
    status = kubelet.image_pull_backoff(pod, "ErrImagePull", container="prepare-worktree")
    run = observe(with_status(pod, status))
    assert run.reason == "ErrImagePull"
    assert run.message.startswith("container prepare-worktree cannot start with image ghcr.io/")


# Running


def test_running_pod_is_running_since_its_start_time(pod: Obj) -> None:
    status = kubelet.running(pod)
    run = observe(with_status(pod, status))
    assert run.phase == RunPhase.RUNNING
    # A stage's clock starts with the runner, not with the Pod (image pulls, the clone).
    runner = status["containerStatuses"][0]["state"]["running"]
    assert run.start_time == parse_time(runner["startedAt"])
    assert run.start_time > parse_time(status["startTime"])
    assert run.finish_time is None


def test_running_pod_whose_runner_already_ended_is_read_as_finished(pod: Obj) -> None:
    done = {**kubelet.succeeded(pod, RESULT), "phase": "Running"}
    assert observe(with_status(pod, done)).phase == RunPhase.SUCCEEDED
    crashed = {**kubelet.failed(pod, 2), "phase": "Running"}
    run = observe(with_status(pod, crashed))
    assert (run.phase, run.exit_code) == (RunPhase.FAILED, 2)


def test_failed_pod_is_failed_even_when_its_runner_exited_0(pod: Obj) -> None:
    status = {**kubelet.succeeded(pod, RESULT), "phase": "Failed"}
    run = observe(with_status(pod, status))
    assert (run.phase, run.exit_code, run.result) == (RunPhase.FAILED, 0, RESULT)


def test_pod_on_an_unreachable_node_counts_as_running(pod: Obj) -> None:
    status = {**kubelet.running(pod), "phase": "Unknown"}
    assert observe(with_status(pod, status)).phase == RunPhase.RUNNING


# Succeeded


def test_succeeded_pod_carries_the_runners_result_exit_code_and_times(pod: Obj) -> None:
    status = kubelet.succeeded(pod, RESULT)
    run = observe(with_status(pod, status))
    assert (run.phase, run.result, run.exit_code) == (RunPhase.SUCCEEDED, RESULT, 0)
    runner = status["containerStatuses"][0]["state"]["terminated"]
    assert run.start_time == parse_time(runner["startedAt"])
    assert run.finish_time == parse_time(runner["finishedAt"])


def test_result_with_outcome_failed_on_a_succeeded_pod_keeps_the_result(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.succeeded(pod, CRITERIA_FAILED)))
    assert (run.phase, run.result) == (RunPhase.SUCCEEDED, CRITERIA_FAILED)


def _truncated() -> str:
    big = RESULT.model_copy(update={"message": "x" * TERMINATION_MESSAGE_BYTES})
    return big.model_dump_json(by_alias=True)


@pytest.mark.parametrize(
    "message",
    [None, "", "   \n", "Traceback (most recent call last):", '{"outcome": "Bogus"}', "[]"],
)
def test_succeeded_pod_with_a_missing_or_garbage_message_has_no_result(
    pod: Obj, message: str | None
) -> None:
    run = observe(with_status(pod, kubelet.succeeded(pod, message)))
    assert (run.phase, run.result, run.exit_code) == (RunPhase.SUCCEEDED, None, 0)


def test_result_the_kubelet_cut_at_4_kib_fails_as_too_large_saying_what_to_do(pod: Obj) -> None:
    status = kubelet.succeeded(pod, _truncated())
    kept = status["containerStatuses"][0]["state"]["terminated"]["message"]
    assert len(kept.encode()) == kubelet.MAX_TERMINATION_MESSAGE_BYTES

    run = observe(with_status(pod, status))

    assert (run.phase, run.reason, run.result) == (RunPhase.FAILED, "ResultTooLarge", None)
    assert "refinement.batchSize" in run.message


def test_a_refinement_answer_too_big_for_4_kib_as_json_arrives_packed_and_whole(
    pod: Obj,
) -> None:
    tickets = [
        RefinedTicket(
            id=f"T-{n}",
            title=f"Add the report number {n} to the dashboard",
            description=f"Team {n} wants report {n} beside the others, refreshed every "
            f"minute, with totals per region and a link to report {n + 1}.",
            acceptance_criteria=["the report shows", "it refreshes every minute"],
            complexity=3,
            dependencies=[f"T-{n - 1}"] if n else [],
            likely_files=[f"app/reports/report_{n}.py"],
        )
        for n in range(30)
    ]
    answer = RESULT.model_copy(update={"refined_tickets": tickets})
    assert len(to_json(answer).encode()) > 2 * TERMINATION_MESSAGE_BYTES

    run = observe(with_status(pod, kubelet.succeeded(pod, to_json(fit(answer)))))

    assert run.result is not None
    assert run.result.refined_tickets == tickets


def test_finish_time_falls_back_to_now_without_finished_at(pod: Obj) -> None:
    status = kubelet.succeeded(pod, RESULT)
    del status["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    del status["initContainerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert observe(with_status(pod, status)).finish_time == NOW


# Failed


def test_deadline_exceeded_names_the_active_deadline(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.deadline_exceeded(pod)))
    assert (run.phase, run.reason) == (RunPhase.FAILED, "DeadlineExceeded")
    assert run.message == "ran past activeDeadlineSeconds=1800"
    assert run.exit_code == kubelet.SIGKILL_EXIT


def test_deadline_exceeded_keeps_the_runners_costs_but_says_why_itself(pod: Obj) -> None:
    late = RESULT.model_copy(update={"outcome": AttemptPhase.FAILED, "reason": "Stopped"})
    run = observe(with_status(pod, kubelet.deadline_exceeded(pod, late)))
    assert run.reason == "DeadlineExceeded"
    assert run.result is not None
    assert (run.result.reason, run.result.cost_usd) == ("DeadlineExceeded", 0.42)


def test_evicted_pod_carries_the_kubelets_message(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.evicted(pod, "The node was low on resource: memory.")))
    assert (run.phase, run.reason) == (RunPhase.FAILED, "Evicted")
    assert run.message == "evicted by the node: The node was low on resource: memory."


def test_oom_killed_runner_message_names_the_memory_limit(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.oom_killed(pod)))
    assert (run.phase, run.reason, run.exit_code) == (RunPhase.FAILED, "OOMKilled", 137)
    assert run.message == "container runner passed its memory limit of 2048Mi"


def test_oom_killed_init_container_is_named(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.oom_killed(pod, "prepare-worktree")))
    assert (run.reason, run.exit_code) == ("OOMKilled", 137)
    assert run.message == "container prepare-worktree passed its memory limit of 2048Mi"


def test_oom_killed_without_a_memory_limit_says_there_was_none() -> None:
    pod = created(pod_for())
    run = observe(with_status(pod, kubelet.oom_killed(pod)))
    assert run.reason == "OOMKilled"
    assert "no memory limit" in run.message


def test_deadline_exceeded_wins_over_an_oom_kill_it_caused(pod: Obj) -> None:
    status = kubelet.oom_killed(pod)
    status |= {"reason": "DeadlineExceeded", "message": kubelet.DEADLINE_MESSAGE}
    assert observe(with_status(pod, status)).reason == "DeadlineExceeded"


def test_failed_worktree_preparation_reports_its_output(pod: Obj) -> None:
    status = kubelet.init_failed(pod, 128, "fatal: could not read Username\n")
    run = observe(with_status(pod, status))
    assert (run.phase, run.reason, run.exit_code) == (RunPhase.FAILED, "Error", 128)
    assert run.message == (
        "preparing the worktree failed (exit code 128): fatal: could not read Username"
    )
    assert run.result is None


def test_long_worktree_output_is_trimmed_to_its_last_kibibyte(pod: Obj) -> None:
    log = "".join(f"remote: line {n}\n" for n in range(500)) + "fatal: the real cause"
    run = observe(with_status(pod, kubelet.init_failed(pod, 1, log)))
    output = run.message.split(": ", 1)[1]
    assert len(output.encode()) <= 1024 + 3
    assert output.endswith("fatal: the real cause")


def test_failed_runner_with_a_result_reports_the_runners_own_reason(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.failed(pod, 1, CRITERIA_FAILED)))
    assert (run.phase, run.reason, run.message) == (
        RunPhase.FAILED,
        "CriteriaFailed",
        CRITERIA_FAILED.message,
    )
    assert (run.result, run.exit_code) == (CRITERIA_FAILED, 1)


def test_failed_runner_without_a_result_reports_its_exit_code(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.failed(pod, 3, "garbage{")))
    assert (run.reason, run.message, run.exit_code) == (
        "Error",
        "container runner exited with code 3",
        3,
    )
    assert run.result is None


def test_runner_killed_by_a_signal_names_the_signal(pod: Obj) -> None:
    run = observe(with_status(pod, kubelet.failed(pod, 137)))
    assert run.message == "container runner exited with code 137 (killed by signal 9, SIGKILL)"


# Times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T03:21:03Z", datetime(2026, 11, 25, 3, 21, 3, tzinfo=UTC)),
        ("2026-11-25T03:21:03.250000Z", datetime(2026, 11, 25, 3, 21, 3, 250000, tzinfo=UTC)),
        (
            "2026-11-25T04:21:03+01:00",
            datetime(2026, 11, 25, 4, 21, 3, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("2026-11-25T03:21:03", datetime(2026, 11, 25, 3, 21, 3, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_times_are_rfc3339_and_naive_ones_are_utc(
    text: str | None, expected: datetime | None
) -> None:
    assert parse_time(text) == expected


def test_result_parsing_accepts_exactly_a_run_result() -> None:
    assert parse_result(RESULT.model_dump_json(by_alias=True, exclude_none=True)) == RESULT
    assert parse_result('{"outcome": "Succeeded", "unknownField": 1}') is None
