"""The task context an agent gets, as markdown: one text per context file, and the prompt.

Pure functions of the RunSpec, so what an agent was told can be rebuilt and tested.
"""

from __future__ import annotations

from ..models.run import RunKind
from .criteria import describe
from .spec import RunSpec


def _bullets(items: list[str], empty: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else empty


def task_text(spec: RunSpec) -> str | None:
    task = spec.task_spec
    if task is None:
        return None
    ticket = f"Ticket: {task.ticket_id}\n\n" if task.ticket_id else ""
    files = (
        f"\n## Files likely involved\n\n{_bullets(task.likely_files, '')}\n"
        if task.likely_files
        else ""
    )
    return (
        f"# Task: {task.title}\n\n{ticket}"
        f"## Description\n\n{task.description.strip() or '(none)'}\n\n"
        f"## Acceptance criteria\n\n{_bullets(task.acceptance_criteria, '(none given)')}\n"
        f"{files}"
    )


def stage_text(spec: RunSpec) -> str | None:
    stage = spec.stage_spec
    if stage is None:
        return None
    action = f"Action: {stage.action}\n\n" if stage.action else ""
    criteria = [describe(c) for c in stage.success_criteria]
    return (
        f"# Stage: {stage.name}\n\n{action}"
        f"## Instructions\n\n{stage.instructions.strip() or '(none)'}\n\n"
        "## Success criteria\n\n"
        "When you finish, your work is checked in the worktree against:\n\n"
        f"{_bullets(criteria, '(none: the stage succeeds when you finish without error)')}\n"
    )


def agent_text(spec: RunSpec) -> str:
    instructions = spec.agent.specialized_instructions.strip() or "(none)"
    return f"# Agent: {spec.agent_name} ({spec.agent.agent_type.value})\n\n{instructions}\n"


def _workspace_note(spec: RunSpec) -> str:
    branch = f" on branch `{spec.branch}`" if spec.branch else ""
    return (
        "# How you work\n\n"
        f"You work in the current directory, a git worktree{branch}. Everything you change "
        "there is committed for you when you finish; do not switch branches. The same "
        "context is in markdown files in the directory `$AGENTFLEET_CONTEXT_DIR`.\n"
    )


def full_prompt(spec: RunSpec) -> str:
    """Everything the agent needs in one text: what it gets on stdin and in prompt.md."""
    if spec.kind is RunKind.REFINEMENT:
        from ..refine.prompt import refinement_prompt

        parts = [
            refinement_prompt(spec.tickets, spec.refine_ids, spec.refined, spec.feedback),
            agent_text(spec),
        ]
    else:
        parts = [
            text
            for text in (task_text(spec), stage_text(spec), agent_text(spec), _workspace_note(spec))
            if text
        ]
    return "\n".join(parts)
