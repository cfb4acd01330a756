"""One task's way through its workflow: outcomes, approvals, retries, failure strategies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..agents.registry import AgentRegistry
from ..models.agent import AgentConfig
from ..models.meta import AgentType, ConditionStatus
from ..models.run import (
    Attempt,
    AttemptPhase,
    ObservedRun,
    RunKind,
    RunPhase,
    RunResult,
    Usage,
    total_usage,
)
from ..models.task import (
    ACTION_ANNOTATION,
    AgentTask,
    AgentTaskStatus,
    HumanAction,
    StagePhase,
    StageStatus,
    TaskPhase,
)
from ..models.workflow import FailureStrategy, Stage, Workflow, WorkflowSpec
from .actions import (
    Action,
    CancelRun,
    ClearAnnotation,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from .conditions import set_condition
from .naming import run_name

KIND = "AgentTask"
_DONE_STAGE = (StagePhase.SUCCEEDED, StagePhase.SKIPPED)


@dataclass
class Context:
    """What every task's reconciliation shares within one `decide()` call."""

    now: datetime
    agents: Mapping[str, AgentConfig]
    runs_by_name: Mapping[str, ObservedRun]
    runs_by_task: Mapping[str, list[ObservedRun]]
    actions: list[Action] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)

    def cancel(self, run: str, reason: str, message: str) -> None:
        """Ask once per call to stop a run, whichever path noticed it first."""
        if run not in self.cancelled:
            self.cancelled.add(run)
            self.actions.append(CancelRun(run, reason, message))

    def event(self, name: str, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(
            RecordEvent(KIND, name, "Warning" if warning else "Normal", reason, message)
        )


def agent_candidates(
    stage: Stage,
    task: AgentTask,
    batch_assignments: Mapping[AgentType, str],
    project_assignments: Mapping[AgentType, str],
    agents: AgentRegistry,
) -> list[str]:
    """Agents that may run `stage`, the assigned one first, then the others of its type in
    the registry's order.

    RetryWithDifferentAgent walks this list; every other strategy keeps to its head.
    """
    if stage.agent_ref is not None:
        return [stage.agent_ref.name] if stage.agent_ref.name in agents else []
    assert stage.agent_type is not None
    of_type = agents.of_type(stage.agent_type)
    for assignments in (task.spec.agent_assignments, batch_assignments, project_assignments):
        assigned = assignments.get(stage.agent_type)
        if assigned is not None:
            if assigned not in agents:
                return []
            return [assigned, *(n for n in of_type if n != assigned)]
    return of_type


def stage_timeout(stage: Stage, agent: AgentConfig | None) -> int | None:
    if stage.timeout_minutes is not None:
        return stage.timeout_minutes * 60
    return agent.spec.timeout_seconds if agent is not None else None


def copy_status(status: AgentTaskStatus) -> AgentTaskStatus:
    """A copy whose stages and attempts may be changed in place; 20x cheaper than deepcopy.

    Lists inside an attempt (criteria) are shared: the flow replaces them, never edits them.
    """
    return status.model_copy(
        update={
            "stages": [
                s.model_copy(
                    update={
                        "attempts": [a.model_copy() for a in s.attempts],
                        "approvals": list(s.approvals),
                    }
                )
                for s in status.stages
            ],
            "conditions": list(status.conditions),
        }
    )


class TaskFlow:
    """A task under reconciliation: a private copy of its status, changed, then compared."""

    def __init__(
        self,
        task: AgentTask,
        workflow: Workflow | None,
        ctx: Context,
        candidates: Mapping[str, list[str]],
        project: str | None,
    ) -> None:
        self.task = task
        self.workflow = workflow
        self.ctx = ctx
        self.candidates = candidates
        self.project = project
        self.original = task.status
        status = copy_status(task.status) if task.status else AgentTaskStatus()
        if workflow is not None:
            known = {s.name: s for s in status.stages}
            status.stages = [
                known.get(s.name) or StageStatus(name=s.name) for s in workflow.spec.stages
            ]
        if status.phase is None:
            status.phase = TaskPhase.PENDING
        if status.branch is None:
            status.branch = task.spec.branch
        self.status = status
        self.abort_batch = False

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def phase(self) -> TaskPhase:
        return TaskPhase(self.status.phase or TaskPhase.PENDING)

    def set_phase(self, phase: TaskPhase, reason: str, message: str, event: bool = True) -> None:
        """Move the task and its summary condition; terminal phases stamp completionTime."""
        if phase != self.phase and event:
            self.ctx.event(
                self.name,
                reason,
                message,
                warning=phase
                in (
                    TaskPhase.FAILED,
                    TaskPhase.DEPENDENCY_FAILED,
                    TaskPhase.ABORTED,
                    TaskPhase.ESCALATED,
                ),
            )
        self.status.phase = phase
        self.status.completion_time = self.ctx.now if phase.terminal else None
        self._summary(reason, message)

    def _summary(self, reason: str, message: str) -> None:
        phase = self.phase
        if phase in (TaskPhase.SUCCEEDED, TaskPhase.SKIPPED):
            state = ConditionStatus.TRUE
        elif phase.terminal:
            state = ConditionStatus.FALSE
        else:
            state = ConditionStatus.UNKNOWN
        self.status.conditions = set_condition(
            self.status.conditions,
            "Succeeded",
            state,
            reason,
            message,
            self.ctx.now,
            self.task.metadata.generation,
        )

    @property
    def started(self) -> bool:
        return any(s.attempts for s in self.status.stages) or self.phase != TaskPhase.PENDING

    @property
    def flow_spec(self) -> WorkflowSpec:
        assert self.workflow is not None, "only an abort handles a task without its workflow"
        return self.workflow.spec

    def stage_spec(self, name: str) -> Stage:
        return self.flow_spec.stage(name)

    def stage_status(self, name: str) -> StageStatus:
        return next(s for s in self.status.stages if s.name == name)

    # --- observing -------------------------------------------------------------------------

    def in_flight(self) -> list[tuple[StageStatus, Attempt]]:
        return [
            (s, s.attempts[-1])
            for s in self.status.stages
            if s.attempts and s.attempts[-1].phase == AttemptPhase.RUNNING
        ]

    def adopt_orphans(self) -> None:
        """A run the driver started before it could record it: take it as the next attempt."""
        recorded = {a.run_name for s in self.status.stages for a in s.attempts}
        for run in self.ctx.runs_by_task.get(self.name, ()):
            if run.name in recorded or run.kind != RunKind.STAGE:
                continue
            stage = self.status.stage(run.stage)
            adoptable = (
                stage is not None
                and not self.phase.terminal
                and stage.phase == StagePhase.PENDING
                and run.attempt == len(stage.attempts) + 1
                and run.name == run_name(self.name, run.stage, run.attempt)
            )
            if adoptable and stage is not None:
                stage.attempts.append(
                    Attempt(
                        attempt=run.attempt,
                        agent=run.agent,
                        run_name=run.name,
                        start_time=run.start_time or self.ctx.now,
                    )
                )
                stage.phase = StagePhase.RUNNING
                if self.phase == TaskPhase.PENDING:
                    self.status.start_time = self.status.start_time or self.ctx.now
                    self.set_phase(TaskPhase.RUNNING, "RunAdopted", f"adopted run {run.name}")
            elif not run.phase.finished:
                self.ctx.cancel(run.name, "Orphaned", "no attempt of the task records this run")

    def observe_runs(self) -> None:
        """Fold finished or overdue runs into their attempts; re-request runs not yet seen."""
        for stage, attempt in self.in_flight():
            run = self.ctx.runs_by_name.get(attempt.run_name)
            if run is not None and (run.task != self.name or run.stage != stage.name):
                run = None  # another task's run by the same name: never take its result
            if run is not None and run.phase.finished:
                self._finish(stage, attempt, run)
                continue
            agent = self.ctx.agents.get(attempt.agent)
            timeout = stage_timeout(self.stage_spec(stage.name), agent)
            started = (run.start_time if run else None) or attempt.start_time or self.ctx.now
            if timeout is not None and self.ctx.now >= started + timedelta(seconds=timeout):
                self.ctx.cancel(
                    attempt.run_name, "DeadlineExceeded", f"stage timeout of {timeout}s"
                )
                self._fail_attempt(
                    stage, attempt, "DeadlineExceeded", f"ran past the stage timeout of {timeout}s"
                )
            elif run is None:
                self._request(stage.name, attempt)

    def _finish(self, stage: StageStatus, attempt: Attempt, run: ObservedRun) -> None:
        result = run.result
        attempt.finish_time = run.finish_time or self.ctx.now
        attempt.exit_code = (
            result.exit_code if result and result.exit_code is not None else run.exit_code
        )
        if result is not None:
            self._record_result(attempt, result)
        ok = (
            run.phase == RunPhase.SUCCEEDED
            and result is not None
            and (result.outcome == AttemptPhase.SUCCEEDED)
        )
        if ok:
            attempt.phase = AttemptPhase.SUCCEEDED
            attempt.reason = result.reason if result and result.reason else "Succeeded"
            self.ctx.event(self.name, "RunSucceeded", f"run {run.name} succeeded")
            required = self.stage_spec(stage.name).required_approvals
            if required and len(stage.approvals) < required:
                stage.phase = StagePhase.AWAITING_APPROVAL
                self.ctx.event(
                    self.name,
                    "ApprovalRequired",
                    f"stage {stage.name} waits for {required} approval(s): "
                    f"agentfleet approve {self.name} --stage {stage.name}",
                )
            else:
                stage.phase = StagePhase.SUCCEEDED
            return
        if result is not None and result.reason:
            reason = result.reason
        elif run.reason:
            reason = run.reason
        elif run.phase == RunPhase.SUCCEEDED:
            reason = "ResultMissing"
        else:
            reason = "Error"
        message = (result.message if result else "") or run.message
        self._fail_attempt(stage, attempt, reason, message)

    @staticmethod
    def _record_result(attempt: Attempt, result: RunResult) -> None:
        attempt.criteria = list(result.criteria)
        attempt.commit = result.commit
        attempt.tokens = result.tokens.total if result.tokens else None
        attempt.token_usage = result.tokens
        attempt.cost_usd = result.cost_usd
        if result.agent_generation is not None:
            attempt.agent_generation = result.agent_generation

    def _fail_attempt(self, stage: StageStatus, attempt: Attempt, reason: str, msg: str) -> None:
        attempt.phase = AttemptPhase.FAILED
        attempt.reason = reason
        attempt.message = msg
        attempt.finish_time = attempt.finish_time or self.ctx.now
        stage.phase = StagePhase.FAILED
        self.ctx.event(
            self.name, "RunFailed", f"run {attempt.run_name} failed: {reason} {msg}".strip(), True
        )

    # --- people ----------------------------------------------------------------------------

    def record_approvals(self) -> None:
        for stage in self.status.stages:
            approvers = self.task.approvals(stage.name)
            if approvers != stage.approvals:
                stage.approvals = approvers
            required = self.stage_spec(stage.name).required_approvals
            if stage.phase == StagePhase.AWAITING_APPROVAL and len(approvers) >= required:
                stage.phase = StagePhase.SUCCEEDED
                self.ctx.event(
                    self.name, "Approved", f"stage {stage.name} approved by {', '.join(approvers)}"
                )

    def apply_human_action(self) -> None:
        """retry, skip or abort from the `agentfleet.dev/action` annotation, then clear it."""
        action = self.task.requested_action()
        if ACTION_ANNOTATION not in self.task.metadata.annotations:
            return
        self.ctx.actions.append(ClearAnnotation(KIND, self.name, ACTION_ANNOTATION))
        if action is HumanAction.SKIP and not self.phase.terminal:
            self.cancel_in_flight("Skipped", "skipped by a human")
            for stage in self.status.stages:
                if stage.phase not in _DONE_STAGE:
                    stage.phase = StagePhase.SKIPPED
            self.set_phase(TaskPhase.SKIPPED, "Skipped", "skipped by a human")
        elif action is HumanAction.ABORT and not self.phase.terminal:
            self.cancel_in_flight("Aborted", "aborted by a human")
            self.set_phase(TaskPhase.ABORTED, "Aborted", "aborted by a human")
        elif action is HumanAction.RETRY and self.phase in (
            TaskPhase.ESCALATED,
            TaskPhase.FAILED,
            TaskPhase.ABORTED,
        ):
            for stage in self.status.stages:
                if stage.phase in (StagePhase.FAILED, StagePhase.RUNNING) or (
                    stage.phase == StagePhase.PENDING and stage.attempts
                ):
                    stage.phase = StagePhase.PENDING
                    stage.retry_from = len(stage.attempts)
            self.status.wave = None
            self.set_phase(TaskPhase.PENDING, "Retried", "retried by a human; waits for a slot")
        else:
            raw = self.task.metadata.annotations[ACTION_ANNOTATION]
            self.ctx.event(
                self.name,
                "ActionIgnored",
                f"{ACTION_ANNOTATION}={raw!r} does not apply to a {self.phase} task "
                "(retry: Escalated, Failed or Aborted tasks; skip, abort: unfinished tasks)",
                warning=True,
            )

    def cancel_in_flight(self, reason: str, message: str) -> None:
        for stage, attempt in self.in_flight():
            self.ctx.cancel(attempt.run_name, reason, message)
            attempt.phase = AttemptPhase.FAILED
            attempt.reason = reason
            attempt.message = message
            attempt.finish_time = self.ctx.now
            stage.phase = StagePhase.FAILED

    # --- failures --------------------------------------------------------------------------

    def next_agent(self, stage: StageStatus) -> str | None:
        """The agent of the stage's next attempt, or None when no agent may take it."""
        candidates = self.candidates.get(stage.name, [])
        tried = [a.agent for a in stage.attempts[stage.retry_from :]]
        if not tried:
            return candidates[0] if candidates else None
        if self.flow_spec.failure_strategy is FailureStrategy.RETRY_WITH_DIFFERENT_AGENT:
            return next((c for c in candidates if c not in tried), None)
        if tried[-1] in candidates:
            return tried[-1]
        return candidates[0] if candidates else None

    def max_retries(self, stage: StageStatus) -> int:
        spec = self.flow_spec
        if spec.max_retries is not None:
            return spec.max_retries
        if spec.failure_strategy is FailureStrategy.RETRY_WITH_DIFFERENT_AGENT:
            return max(len(self.candidates.get(stage.name, [])) - 1, 0)
        return 0

    def handle_failures(self) -> None:
        """A failed stage is retried while its budget lasts, then the failure strategy acts."""
        if self.phase.terminal or self.phase == TaskPhase.ESCALATED:
            return
        for stage in self.status.stages:
            if stage.phase != StagePhase.FAILED:
                continue
            used = len(stage.attempts) - stage.retry_from
            if used <= self.max_retries(stage) and self.next_agent(stage) is not None:
                stage.phase = StagePhase.PENDING
                self.ctx.event(
                    self.name,
                    "RetryScheduled",
                    f"stage {stage.name} will run again (attempt {len(stage.attempts) + 1})",
                )
                continue
            self._apply_strategy(stage)
            return

    def _apply_strategy(self, stage: StageStatus) -> None:
        strategy = self.flow_spec.failure_strategy
        last = stage.attempts[-1] if stage.attempts else None
        why = f"stage {stage.name} failed" + (f": {last.reason}" if last and last.reason else "")
        if strategy is FailureStrategy.ESCALATE_TO_HUMAN:
            self.cancel_in_flight("Escalated", why)
            self.set_phase(
                TaskPhase.ESCALATED,
                "Escalated",
                f"{why}; a human decides: agentfleet retry|skip {self.name}, "
                f"or agentfleet abort the batch",
            )
            return
        self.cancel_in_flight("TaskFailed", why)
        self.set_phase(TaskPhase.FAILED, "StageFailed", why)
        if strategy is FailureStrategy.ABORT_ALL:
            self.abort_batch = True

    # --- starting --------------------------------------------------------------------------

    def startable_stages(self) -> list[str]:
        """Stages that could start now by the workflow's own rules (slots come later)."""
        if self.phase.terminal or self.phase == TaskPhase.ESCALATED:
            return []
        by_name = {s.name: s for s in self.status.stages}
        running = any(s.phase == StagePhase.RUNNING for s in self.status.stages)
        parallel = self.flow_spec.parallel_execution
        if running and not parallel:
            return []
        ready = []
        for spec in self.flow_spec.stages:
            stage = by_name[spec.name]
            if stage.phase != StagePhase.PENDING:
                continue
            if all(by_name[d].phase in _DONE_STAGE for d in spec.dependencies):
                ready.append(spec.name)
                if not parallel:
                    break
        return ready

    def start(self, stage_name: str, agent: str) -> str:
        """Record attempt n+1 of the stage and ask for its run; returns the run's name."""
        stage = self.stage_status(stage_name)
        number = len(stage.attempts) + 1
        name = run_name(self.name, stage_name, number)
        config = self.ctx.agents.get(agent)
        attempt = Attempt(
            attempt=number,
            agent=agent,
            run_name=name,
            start_time=self.ctx.now,
            agent_generation=config.metadata.generation if config else None,
        )
        stage.attempts.append(attempt)
        stage.phase = StagePhase.RUNNING
        self.status.start_time = self.status.start_time or self.ctx.now
        self._request(stage_name, attempt)
        self.ctx.event(self.name, "RunStarted", f"run {name} started with agent {agent}")
        if self.phase == TaskPhase.PENDING:
            # RunStarted already says so: one Event per start, not two.
            self.set_phase(TaskPhase.RUNNING, "Running", f"running {stage_name}", event=False)
        return name

    def _request(self, stage_name: str, attempt: Attempt) -> None:
        agent = self.ctx.agents.get(attempt.agent)
        self.ctx.actions.append(
            StartRun(
                RunRequest(
                    name=attempt.run_name,
                    kind=RunKind.STAGE,
                    batch=self.task.spec.batch_ref.name if self.task.spec.batch_ref else None,
                    task=self.name,
                    stage=stage_name,
                    attempt=attempt.attempt,
                    agent=attempt.agent,
                    project=self.project,
                    timeout_seconds=stage_timeout(self.stage_spec(stage_name), agent),
                )
            )
        )

    # --- summing up ------------------------------------------------------------------------

    def settle(self) -> None:
        """Phase, progress, totals and the summary condition, from the stages."""
        stages = self.status.stages
        done = sum(1 for s in stages if s.phase in _DONE_STAGE)
        self.status.progress = f"{done}/{len(stages)}"
        attempts = [a for s in stages for a in s.attempts]
        usage = total_usage(Usage.of(attempt) for attempt in attempts)
        self.status.usage = usage
        self.status.tokens = usage.tokens
        self.status.cost_usd = usage.cost_usd
        commits = [a for a in attempts if a.commit]
        if commits:
            self.status.commit = max(commits, key=lambda a: a.finish_time or self.ctx.now).commit
        self.status.observed_generation = self.task.metadata.generation
        if self.phase.terminal or self.phase == TaskPhase.ESCALATED:
            return
        running = [s.name for s in stages if s.phase == StagePhase.RUNNING]
        if self.phase == TaskPhase.PENDING and not running:
            if not self.started:
                self._summary("Pending", "waiting for its dependencies and a free slot")
            return
        if done == len(stages):
            self.set_phase(TaskPhase.SUCCEEDED, "Succeeded", "every stage succeeded")
        elif running or self.startable_stages():
            self.set_phase(
                TaskPhase.RUNNING,
                "Running",
                f"running {', '.join(running)}" if running else "waiting for a slot",
            )
        elif any(s.phase == StagePhase.AWAITING_APPROVAL for s in stages):
            waiting = [s.name for s in stages if s.phase == StagePhase.AWAITING_APPROVAL]
            self.set_phase(
                TaskPhase.AWAITING_APPROVAL,
                "AwaitingApproval",
                f"stage {', '.join(waiting)} waits for approval",
            )

    def status_action(self) -> SetStatus | None:
        if self.status == self.original:
            return None
        return SetStatus(KIND, self.name, self.status)
