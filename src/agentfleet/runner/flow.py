"""One run, step by step: context, agent, criteria, commit, and the result that explains it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..executors import executor_for, ignored_settings
from ..executors.base import (
    ExecutorOutcome,
    ExecutorUnavailableError,
    InvalidAgentConfigError,
    Invocation,
)
from ..executors.versions import CLI_PACKAGES, pinned_versions
from ..models.log import LogEventType
from ..models.run import AttemptPhase, CriterionOutcome, RefinedTicket, RunKind, RunResult
from .agent_process import AgentExit, run_agent
from .commit import CommitError, CommitOutcome, Identity, commit_changes, head_sha
from .context import context_inside_worktree, write_context
from .deadline import Deadline
from .events import EventSink
from .process_group import stop_requested
from .prompt import full_prompt
from .result import Reason
from .spec import RunSpec

STDERR_LINES_IN_MESSAGE = 5


def failed(reason: Reason, message: str, deadline: Deadline, **fields: object) -> RunResult:
    return RunResult.model_validate(
        {
            "outcome": AttemptPhase.FAILED,
            "reason": reason.value,
            "message": message,
            "duration_seconds": round(deadline.elapsed(), 3),
            **fields,
        }
    )


def _agent_failure(agent: AgentExit, outcome: ExecutorOutcome) -> tuple[Reason, str] | None:
    """Why the agent's part failed, or None when it succeeded."""
    if agent.stopped:
        return Reason.STOPPED, "the runner was asked to stop; the agent was ended"
    if agent.timed_out:
        return Reason.DEADLINE_EXCEEDED, (
            f"the agent was still running at the run's deadline ({agent.duration_seconds:.0f}s) "
            "and was ended with its process group"
        )
    stderr = "\n".join(agent.stderr_tail[-STDERR_LINES_IN_MESSAGE:])
    said = f": {outcome.message}" if outcome.message and not outcome.ok else ""
    if agent.out_of_memory:
        return Reason.OOM_KILLED, f"the agent ran out of memory (exit {agent.exit_code})\n{stderr}"
    if agent.start_error:
        return Reason.AGENT_FAILED, agent.start_error
    if agent.exit_code != 0 and not outcome.answer_invalid:
        return Reason.AGENT_FAILED, f"the agent exited {agent.exit_code}{said}\n{stderr}".rstrip()
    if not outcome.ok:
        return Reason.AGENT_FAILED, outcome.message or "the agent reported a failure"
    return None


def _missing_program(spec: RunSpec, invocation: Invocation) -> str:
    """Why an agent CLI cannot start (not installed), or "" when it can be found.

    Only for the CLI executors: a `command` agent that cannot start fails as AgentFailed,
    with the operating system's reason.
    """
    executor = spec.agent.base_executor.type.value
    if executor not in CLI_PACKAGES:
        return ""
    program = invocation.argv[0]
    env = invocation.environment(os.environ)
    if os.sep in program:
        found = (Path(spec.worktree) / program).exists()
    else:
        found = shutil.which(program, path=env.get("PATH")) is not None
    if found:
        return ""
    package, _ = CLI_PACKAGES[executor]
    version = pinned_versions()[executor]
    return (
        f"{program!r} ({executor} executor) is not found on PATH: install it (`npm install -g "
        f"{package}@{version}`, the version agentfleet is tested with) or set "
        "baseExecutor.command to where it is"
    )


def _criteria_summary(outcomes: list[CriterionOutcome]) -> str:
    failures = [o for o in outcomes if not o.passed]
    return "criteria failed: " + "; ".join(
        f"{o.type}: {o.message.splitlines()[0] if o.message else 'failed'}" for o in failures
    )


def _success_summary(
    outcome: ExecutorOutcome, criteria: list[CriterionOutcome], commit: CommitOutcome | None
) -> str:
    parts = ["the agent exited 0"]
    if criteria:
        parts.append(f"{len(criteria)} criteria passed")
    if commit is not None:
        stat = commit.diff_stat
        parts.append(
            f"committed {commit.sha[:12]} ({stat.files_changed} files, "
            f"+{stat.insertions} -{stat.deletions})"
            if commit.committed
            else f"nothing to commit, HEAD {commit.sha[:12]}"
        )
    return "; ".join(parts)


def _emit_criterion(sink: EventSink, outcome: CriterionOutcome) -> None:
    verdict = "passed" if outcome.passed else "failed"
    sink.emit(
        LogEventType.CRITERION,
        f"{outcome.type} {verdict}",
        data={"criterion": outcome.type, "passed": outcome.passed, "message": outcome.message},
    )


def _commit(spec: RunSpec, base: str | None, sink: EventSink) -> CommitOutcome | str:
    """The commit of the run's work, or why it failed (reported, never raised)."""
    title = spec.task_spec.title if spec.task_spec else f"{spec.stage} ({spec.name})"
    ticket = (spec.task_spec.ticket_id if spec.task_spec else None) or spec.task or ""
    try:
        commit = commit_changes(
            Path(spec.worktree),
            subject=title,
            trailers={
                "Ticket": ticket,
                "Stage": spec.stage,
                "Run": spec.name,
                "Agent": spec.agent_name,
            },
            author=Identity(spec.author.name, spec.author.email),
            branch=spec.branch,
            base=base,
        )
    except CommitError as exc:
        sink.emit(LogEventType.COMMIT, f"commit failed: {exc}", data={"committed": False})
        return str(exc)
    stat = commit.diff_stat
    sink.emit(
        LogEventType.COMMIT,
        commit.sha if commit.committed else f"nothing to commit; HEAD is {commit.sha}",
        data={
            "sha": commit.sha,
            "committed": commit.committed,
            "branch": spec.branch,
            **stat.model_dump(by_alias=True),
        },
    )
    return commit


def execute(spec: RunSpec, sink: EventSink, deadline: Deadline) -> RunResult:
    """Run the agent, check and commit; every failure becomes a result, not an exception."""
    if not Path(spec.worktree).is_dir():
        return failed(Reason.INVALID_SPEC, f"worktree {spec.worktree} is not a folder", deadline)
    stage_run = spec.kind is RunKind.STAGE
    if stage_run and context_inside_worktree(spec):
        return failed(
            Reason.INVALID_SPEC,
            f"contextDir {spec.context_dir} is inside the worktree: it would be committed",
            deadline,
        )
    try:
        executor = executor_for(spec.agent.base_executor.type)
    except ExecutorUnavailableError as exc:
        return failed(Reason.EXECUTOR_UNAVAILABLE, str(exc), deadline)

    prompt = full_prompt(spec)
    try:
        invocation = executor.command(spec, prompt)
    except InvalidAgentConfigError as exc:
        return failed(Reason.INVALID_SPEC, f"agent {spec.agent_name}: {exc}", deadline)
    missing = _missing_program(spec, invocation)
    if missing:
        return failed(Reason.EXECUTOR_UNAVAILABLE, missing, deadline)
    write_context(spec, prompt, invocation.files)
    base = head_sha(Path(spec.worktree)) if stage_run else None

    def on_stdout(line: str) -> None:
        for event in executor.parse_line(line):
            sink.emit_agent_event(event)

    parse_stderr = getattr(executor, "parse_stderr_line", None)

    def on_stderr(line: str) -> None:
        sink.emit(LogEventType.TEXT, line, data={"stream": "stderr"})
        if parse_stderr is not None:
            for event in parse_stderr(line):
                sink.emit_agent_event(event)

    for setting in ignored_settings(spec.agent):
        sink.emit(LogEventType.RUNNER, f"ignored: {setting}", data={"ignored": setting})
    sink.emit(
        LogEventType.RUNNER,
        "agent started",
        data={"command": invocation.argv[0], "cwd": spec.worktree, "kind": spec.kind.value},
    )
    agent = run_agent(
        invocation, spec.worktree, deadline, spec.memory_limit_bytes, on_stdout, on_stderr
    )
    outcome = executor.finish(agent.exit_code if agent.exit_code is not None else 127)
    if agent.handler_error:
        sink.emit(LogEventType.ERROR, f"reading the agent's output: {agent.handler_error}")
    sink.emit(
        LogEventType.RUNNER,
        f"agent exited {agent.exit_code}",
        data={"exitCode": agent.exit_code, "durationSeconds": round(agent.duration_seconds, 3)},
        tokens=outcome.tokens,
        cost_usd=outcome.cost_usd,
    )
    usage: dict[str, object] = {
        "exit_code": agent.exit_code,
        "tokens": outcome.tokens,
        "cost_usd": outcome.cost_usd,
    }
    failure = _agent_failure(agent, outcome)
    if not stage_run:
        return _refinement_result(spec, outcome, failure, deadline, usage)

    from .criteria import check_criterion, not_checked  # after the agent: off the start path

    criteria_spec = spec.stage_spec.success_criteria if spec.stage_spec else []
    criteria: list[CriterionOutcome] = []
    for criterion in criteria_spec:
        if failure is None and stop_requested():
            failure = (Reason.STOPPED, "the runner was asked to stop while checking criteria")
        if failure is not None:
            checked = not_checked(criterion, f"the run already failed ({failure[0].value})")
        else:
            checked = check_criterion(criterion, Path(spec.worktree), deadline)
        criteria.append(checked)
        _emit_criterion(sink, checked)
    if failure is None and deadline.passed and not all(c.passed for c in criteria):
        failure = (Reason.DEADLINE_EXCEEDED, "the run's deadline passed while checking criteria")

    if failure is not None and failure[0] is Reason.STOPPED:
        return failed(failure[0], failure[1], deadline, criteria=criteria, **usage)
    commit = _commit(spec, base, sink)
    commit_fields: dict[str, object] = {}
    if isinstance(commit, CommitOutcome):
        commit_fields = {"commit": commit.sha, "diff_stat": commit.diff_stat}
    fields = {**usage, **commit_fields, "criteria": criteria}
    if failure is not None:
        return failed(failure[0], failure[1], deadline, **fields)
    if isinstance(commit, str):
        return failed(Reason.COMMIT_FAILED, commit, deadline, **fields)
    if not all(c.passed for c in criteria):
        return failed(Reason.CRITERIA_FAILED, _criteria_summary(criteria), deadline, **fields)
    return RunResult.model_validate(
        {
            "outcome": AttemptPhase.SUCCEEDED,
            "reason": Reason.SUCCEEDED.value,
            "message": _success_summary(outcome, criteria, commit),
            "duration_seconds": round(deadline.elapsed(), 3),
            **fields,
        }
    )


def _refinement_result(
    spec: RunSpec,
    outcome: ExecutorOutcome,
    failure: tuple[Reason, str] | None,
    deadline: Deadline,
    usage: dict[str, object],
) -> RunResult:
    """No criteria and no commit: the worktree may be the repository itself.

    A run whose answer is usable for some tickets succeeds with those, and names the others
    in `refinementErrors`; only an answer with nothing usable in it fails the run.
    """
    if failure is None and outcome.answer_invalid and not outcome.text.strip():
        failure = (Reason.INVALID_REFINEMENT, outcome.message)
    if failure is not None:
        return failed(failure[0], failure[1], deadline, **usage)
    from ..refine.parse import RefinementError, parse_refinement

    requested = spec.refine_ids or [t.id for t in spec.tickets]
    try:
        parsed = parse_refinement(
            outcome.text,
            requested=requested,
            known={t.id for t in spec.tickets},
            structured=outcome.structured,
        )
    except RefinementError as exc:
        return failed(Reason.INVALID_REFINEMENT, str(exc), deadline, **usage)
    tickets: list[RefinedTicket] = parsed.tickets
    message = f"{len(tickets)} of {len(requested)} tickets refined"
    if parsed.errors:
        message += f"; unusable: {', '.join(sorted(parsed.errors))}"
    return RunResult.model_validate(
        {
            "outcome": AttemptPhase.SUCCEEDED,
            "reason": Reason.SUCCEEDED.value,
            "message": message,
            "duration_seconds": round(deadline.elapsed(), 3),
            "refined_tickets": tickets,
            "refinement_errors": parsed.errors,
            **usage,
        }
    )
