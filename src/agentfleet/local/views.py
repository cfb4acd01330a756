"""How the CLI shows resources: kubectl-like tables, `describe` pages and the run summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..models import AgentConfig, AgentTask, Project, TicketBatch, Workflow
from ..models.meta import Resource, Status
from ..models.run import Usage
from .store import EventRecord, RunRecord

KIND_ALIASES: dict[str, str] = {}
for _kind, _names in {
    "Project": ("projects", "project", "afproj"),
    "AgentConfig": ("agents", "agent", "agentconfigs", "agentconfig"),
    "Workflow": ("workflows", "workflow", "afwf"),
    "TicketBatch": ("batches", "batch", "ticketbatches", "ticketbatch", "tb"),
    "AgentTask": ("tasks", "task", "agenttasks", "agenttask", "at"),
}.items():
    KIND_ALIASES[_kind.lower()] = _kind
    for _name in _names:
        KIND_ALIASES[_name] = _kind

KIND_CHOICES = "projects|agents|workflows|batches|tasks"


def resolve_kind(word: str) -> str | None:
    return KIND_ALIASES.get(word.lower())


def age(created: datetime | None, now: datetime | None = None) -> str:
    if created is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    seconds = ((end or datetime.now(UTC)) - start).total_seconds()
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _phase(status: Status | None) -> str:
    return str(status.phase) if status is not None and status.phase else "Pending"


def _reason(status: Status | None, summary: str) -> str:
    condition = status.condition(summary) if status is not None else None
    return condition.reason if condition is not None else ""


def current_stage(task: AgentTask) -> str:
    if task.status is None:
        return "-"
    for stage in task.status.stages:
        if stage.phase not in ("Succeeded", "Skipped"):
            return f"{stage.name} ({stage.phase})"
    return "-"


def criteria_summary(task: AgentTask) -> str:
    """Criteria passed of all checked in each stage's last attempt, `2/2`, and which failed."""
    if task.status is None:
        return "-"
    checked = [c for s in task.status.stages if s.attempts for c in s.attempts[-1].criteria]
    if not checked:
        return "-"
    failed = sorted({c.type for c in checked if not c.passed})
    passed = f"{sum(c.passed for c in checked)}/{len(checked)}"
    return f"{passed} ({', '.join(failed)} failed)" if failed else passed


def money(cost: float) -> str:
    return "$0" if cost == 0 else f"${cost:.4f}" if cost < 0.01 else f"${cost:.2f}"


def usage_text(usage: Usage) -> str:
    """Tokens split the way providers bill them, and the cost, over `usage.attempts` attempts."""
    return (
        f"{usage.tokens} tokens (input {usage.input_tokens}, output {usage.output_tokens}, "
        f"cache read {usage.cache_read_tokens}, cache write {usage.cache_creation_tokens}); "
        f"{money(usage.cost_usd)} over {usage.attempts} attempt(s) that reported usage"
    )


def get_table(kind: str, objects: Sequence[Resource[Any, Any]], active: dict[str, int]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    if kind == "Project":
        columns = ["NAME", "REPOSITORY", "BASE", "WORKFLOW", "PHASE", "AGE"]
    elif kind == "AgentConfig":
        columns = ["NAME", "TYPE", "EXECUTOR", "MAX-PARALLEL", "MEMORY", "CPU", "ACTIVE", "AGE"]
    elif kind == "Workflow":
        columns = ["NAME", "STAGES", "FAILURE-STRATEGY", "MAX-RETRIES", "AGE"]
    elif kind == "TicketBatch":
        columns = [
            "NAME",
            "PROJECT",
            "STRATEGY",
            "PHASE",
            "PROGRESS",
            "TOKENS",
            "COST",
            "REASON",
            "AGE",
        ]
    else:
        columns = [
            "NAME",
            "BATCH",
            "TICKET",
            "PHASE",
            "STAGE",
            "PROGRESS",
            "TOKENS",
            "COST",
            "BRANCH",
            "AGE",
        ]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for obj in objects:
        created = obj.metadata.creation_timestamp
        if isinstance(obj, Project):
            ref = obj.spec.default_workflow_ref
            row = [
                obj.name,
                obj.spec.repository.url,
                obj.spec.repository.base_branch,
                ref.name if ref else "-",
                _phase(obj.status),
                age(created),
            ]
        elif isinstance(obj, AgentConfig):
            limits = obj.spec.environment_requirements.resource_limits
            row = [
                obj.name,
                str(obj.spec.agent_type),
                str(obj.spec.base_executor.type),
                str(obj.spec.max_parallel_tasks or "-"),
                f"{limits.memory_mb}Mi" if limits.memory_mb else "-",
                f"{limits.cpu_cores:g}" if limits.cpu_cores else "-",
                str(active.get(obj.name, 0)),
                age(created),
            ]
        elif isinstance(obj, Workflow):
            row = [
                obj.name,
                " -> ".join(s.name for s in obj.spec.stages),
                str(obj.spec.failure_strategy),
                str(obj.spec.max_retries if obj.spec.max_retries is not None else "-"),
                age(created),
            ]
        elif isinstance(obj, TicketBatch):
            row = [
                obj.name,
                obj.spec.project_ref.name,
                str(obj.spec.strategy),
                _phase(obj.status),
                (obj.status.progress if obj.status else None) or "-",
                str(obj.status.usage.tokens) if obj.status else "0",
                money(obj.status.usage.cost_usd) if obj.status else "$0",
                _reason(obj.status, "Succeeded") or "-",
                age(created),
            ]
        else:
            assert isinstance(obj, AgentTask)
            row = [
                obj.name,
                obj.spec.batch_ref.name if obj.spec.batch_ref else "-",
                obj.spec.ticket_id or "-",
                _phase(obj.status),
                current_stage(obj),
                (obj.status.progress if obj.status else None) or "-",
                str(obj.status.tokens) if obj.status else "0",
                money(obj.status.cost_usd) if obj.status else "$0",
                (obj.status.branch if obj.status else None) or obj.spec.branch or "-",
                age(created),
            ]
        table.add_row(*row)
    return table


def dump(objects: Sequence[Resource[Any, Any]], fmt: str, single: bool) -> str:
    """`-o yaml|json`: one object as itself, several as a kubectl-style List."""
    items = [o.to_wire() for o in objects]
    data: Any = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items}
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False)


def _conditions_table(status: Status | None) -> Table | Text:
    if status is None or not status.conditions:
        return Text("Conditions: none")
    table = Table(title="Conditions", title_justify="left", box=None, header_style="bold")
    for column in ("TYPE", "STATUS", "REASON", "MESSAGE", "SINCE"):
        table.add_column(column)
    for c in status.conditions:
        table.add_row(c.type, str(c.status), c.reason, c.message, age(c.last_transition_time))
    return table


def _events_table(events: Sequence[EventRecord]) -> Table | Text:
    if not events:
        return Text("Events: none")
    table = Table(title="Events", title_justify="left", box=None, header_style="bold")
    for column in ("TIME", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    for e in events[-50:]:
        table.add_row(e.time.strftime("%H:%M:%S"), e.type, e.reason, e.message)
    return table


def describe(
    obj: Resource[Any, Any], events: Sequence[EventRecord], runs: Sequence[RunRecord]
) -> RenderableType:
    status = obj.status
    head = Table.grid(padding=(0, 2))
    head.add_row("Name:", obj.name)
    head.add_row("Kind:", obj.kind)
    head.add_row("Created:", str(obj.metadata.creation_timestamp or "-"))
    head.add_row("Generation:", str(obj.metadata.generation or "-"))
    head.add_row("Phase:", _phase(status))
    if obj.metadata.annotations:
        head.add_row(
            "Annotations:", "\n".join(f"{k}={v}" for k, v in obj.metadata.annotations.items())
        )
    parts: list[RenderableType] = [head]
    spec = yaml.safe_dump({"spec": obj.to_wire()["spec"]}, sort_keys=False, width=1000)
    parts.append(Text(spec.rstrip(), no_wrap=True, overflow="ellipsis"))
    parts.append(_conditions_table(status))
    if isinstance(obj, AgentTask) and obj.status is not None:
        head.add_row("Branch:", obj.status.branch or "-")
        head.add_row("Commit:", obj.status.commit or "-")
        head.add_row("Usage:", usage_text(obj.status.usage))
        attempts = Table(title="Attempts", title_justify="left", box=None, header_style="bold")
        for column in (
            "STAGE",
            "#",
            "AGENT",
            "GEN",
            "PHASE",
            "REASON",
            "CRITERIA",
            "COMMIT",
            "TOKENS",
            "COST",
            "DURATION",
            "MESSAGE",
        ):
            attempts.add_column(column)
        for stage in obj.status.stages:
            if not stage.attempts:
                attempts.add_row(stage.name, "-", "-", "", str(stage.phase), *[""] * 7)
            for a in stage.attempts:
                criteria = ", ".join(
                    f"{c.type} {'ok' if c.passed else 'FAILED'}" for c in a.criteria
                )
                attempts.add_row(
                    stage.name,
                    str(a.attempt),
                    a.agent,
                    str(a.agent_generation or "-"),
                    str(a.phase),
                    a.reason,
                    criteria,
                    (a.commit or "")[:10],
                    str(a.tokens) if a.tokens is not None else "-",
                    money(a.cost_usd) if a.cost_usd is not None else "-",
                    duration(a.start_time, a.finish_time),
                    a.message[:120],
                )
        parts.append(attempts)
    if isinstance(obj, TicketBatch) and obj.status is not None:
        head.add_row("Progress:", obj.status.progress or "-")
        head.add_row("Usage:", usage_text(obj.status.usage))
        if obj.status.refinement_attempts:
            refinement = Table(
                title="Refinement", title_justify="left", box=None, header_style="bold"
            )
            for column in ("#", "AGENT", "TICKETS", "PHASE", "REASON", "TOKENS", "COST", "MESSAGE"):
                refinement.add_column(column)
            for r in obj.status.refinement_attempts:
                refinement.add_row(
                    str(r.attempt),
                    r.agent,
                    ", ".join(r.tickets) or "all",
                    str(r.phase),
                    r.reason,
                    str(r.tokens) if r.tokens is not None else "-",
                    money(r.cost_usd) if r.cost_usd is not None else "-",
                    r.message[:120],
                )
            parts.append(refinement)
        tickets = Table(title="Tickets", title_justify="left", box=None, header_style="bold")
        for column in ("TICKET", "TASK", "PHASE", "REASON"):
            tickets.add_column(column)
        for entry in obj.status.tickets:
            reason = f"{entry.reason}: {entry.message or ''}"[:120] if entry.reason else ""
            tickets.add_row(entry.id, entry.task or "-", entry.phase, reason)
        parts.append(tickets)
    if isinstance(obj, AgentConfig):
        live = [r for r in runs if r.agent == obj.name and not r.phase.finished]
        head.add_row("Active runs:", ", ".join(r.name for r in live) or "none")
    parts.append(_events_table(events))
    return Group(*parts)


def summary_table(batch: TicketBatch, tasks: Sequence[AgentTask]) -> Table:
    """The table `agentfleet run` ends with: what each task became, and what it cost."""
    table = Table(
        title=f"{batch.name}: {_phase(batch.status)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("task", "phase", "branch", "commit", "criteria", "duration"):
        if column == "branch":
            table.add_column(column, overflow="fold", min_width=12)
        else:
            table.add_column(column, no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for task in sorted(tasks, key=lambda t: t.spec.order):
        status = task.status
        table.add_row(
            task.name,
            _phase(status),
            (status.branch if status else None) or task.spec.branch or "-",
            ((status.commit if status else None) or "-")[:8],
            criteria_summary(task),
            duration(status.start_time, status.completion_time) if status else "-",
            str(status.tokens) if status else "0",
            money(status.cost_usd) if status else "$0",
        )
    return table


def print_summary(console: Console, batches: Sequence[TicketBatch], tasks: list[AgentTask]):
    for batch in batches:
        mine = [t for t in tasks if t.spec.batch_ref and t.spec.batch_ref.name == batch.name]
        console.print(summary_table(batch, mine))
        condition = batch.status.condition("Succeeded") if batch.status else None
        if condition is not None:
            phase = _phase(batch.status)
            why = "" if condition.reason == phase else f" ({condition.reason})"
            console.print(f"{batch.name}: {phase}{why}: {condition.message}", highlight=False)
