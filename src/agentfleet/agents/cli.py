"""`agentfleet agents`: import agent definitions, change one agent's settings, list agents.

Imports are lazy (models, YAML, the store): this module is loaded on every CLI start to
register its commands, and most starts never use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..commandline import (
    EXIT_BAD_INPUT,
    RepoOption,
    StateDirOption,
    console,
    err_console,
    print_error,
    print_warning,
)
from ..commandline import fail as _fail
from ..commandline import workspace as _workspace

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ..local.store import Store
    from ..local.workspace import Workspace
    from ..models.agent import AgentConfig
    from ..models.meta import AgentType
    from .discover import Discovery

agents_app = typer.Typer(
    name="agents",
    help="Import agent definitions (AgentConfig manifests, Claude Code agent files), "
    "change an agent's settings, list agents.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_INVALID_FILES = EXIT_BAD_INPUT  # as `agentfleet apply` on a bad manifest

KIND = "AgentConfig"


def _stored_agents(ws: Workspace) -> dict[str, AgentConfig]:
    """The store's agents, without creating a store where none exists (a dry run writes nothing)."""
    if not ws.has_store:
        return {}
    from ..models.agent import AgentConfig

    with ws.open_store() as store:
        return {a.name: a for a in store.list(KIND) if isinstance(a, AgentConfig)}


def _known(names: Iterable[str]) -> str:
    listed = ", ".join(sorted(names))
    return f"known agents: {listed}" if listed else "no agents are known"


def _agent_type(word: str | None) -> AgentType | None:
    from ..models.meta import AgentType

    if word is None:
        return None
    by_word = {t.value.lower(): t for t in AgentType}
    found = by_word.get(word.lower())
    if found is None:
        allowed = ", ".join(t.value for t in AgentType)
        raise _fail(f"--agent-type: {word!r} is not one of {allowed}", EXIT_BAD_INPUT)
    return found


# --- import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str
    name: str
    result: str
    generation: int


def _predict(new: AgentConfig, old: AgentConfig | None) -> tuple[str, int]:
    """What `Store.apply` will say and the generation it will give, without writing."""
    from ..local.store import HUMAN_ANNOTATION_PREFIX

    if old is None:
        return "created", 1
    generation = old.metadata.generation or 1
    if new.spec.to_wire() != old.spec.to_wire():
        return "updated", generation + 1
    kept = {
        k: v for k, v in old.metadata.annotations.items() if k.startswith(HUMAN_ANNOTATION_PREFIX)
    }
    if (
        kept | new.metadata.annotations != old.metadata.annotations
        or new.metadata.labels != old.metadata.labels
    ):
        return "updated", generation
    return "unchanged", generation


def _with_sub_agents(target: AgentConfig, found: Discovery) -> AgentConfig:
    """`target` with the discovered sub-agents added (a file's version replaces a stored one)."""
    from ..models.agent import AgentConfig

    body = target.to_wire()
    body.pop("status", None)
    subs = body["spec"].setdefault("subAgents", {})
    for sub in found.sub_agents:
        subs[sub.name] = sub.sub_agent.to_wire()
    return AgentConfig.model_validate(body)


def _sub_agent_rows(
    parent: str, found: Discovery, before: AgentConfig | None, generation: int
) -> list[Row]:
    old = before.spec.sub_agents if before is not None else {}
    rows = []
    for sub in found.sub_agents:
        previous = old.get(sub.name)
        result = (
            "created"
            if previous is None
            else "unchanged"
            if previous == sub.sub_agent
            else "updated"
        )
        rows.append(Row("SubAgent", f"{parent}/{sub.name}", result, generation))
    return rows


def _apply(store: Store, resources: list[AgentConfig]) -> dict[str, tuple[str, int]]:
    """Apply through the store, as `agentfleet apply` does; each name's result and generation."""
    from datetime import UTC, datetime

    words = {"created": "created", "configured": "updated", "unchanged": "unchanged"}
    outcomes: list[str] = store.apply(resources, datetime.now(UTC))
    results: dict[str, tuple[str, int]] = {}
    for resource, line in zip(resources, outcomes, strict=True):
        stored = store.get(KIND, resource.name)
        assert stored is not None
        results[resource.name] = (words[line.rsplit(" ", 1)[1]], stored.metadata.generation or 1)
    return results


def _import_table(rows: list[Row], dry_run: bool) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("KIND", "NAME", "RESULT" if not dry_run else "WOULD BE", "GENERATION"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(row.kind, row.name, row.result, str(row.generation))
    return table


@agents_app.command("import")
def import_(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Folder holding AgentConfig YAML, .claude/agents/*.md or agents/*.md files."
        ),
    ],
    subagents_of: Annotated[
        str | None,
        typer.Option(
            "--subagents-of",
            help="Make the Claude agent files sub-agents of this AgentConfig (stored, or in "
            "DIR) instead of agents of their own.",
        ),
    ] = None,
    agent_type: Annotated[
        str | None,
        typer.Option(
            "--agent-type",
            help="Agent type of Claude agent files whose front matter names none "
            "(default: guessed from their name and description).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and show what would change; store nothing.")
    ] = False,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Check every agent definition in DIR, then store them all, or none if any is invalid."""
    from .discover import discover

    default_type = _agent_type(agent_type)
    found = discover(directory, agent_type=default_type, as_sub_agents=subagents_of is not None)
    for skipped in found.skipped:
        err_console.print(f"skipped: {skipped}")
    for warning in found.warnings:
        print_warning(warning)
    if not found.ok:
        for issue in found.issues:
            print_error(issue)
        print_error(f"{len(found.issues)} error(s) in {directory}: nothing was stored")
        raise typer.Exit(EXIT_INVALID_FILES)
    if subagents_of is not None and not found.sub_agents:
        raise _fail(f"--subagents-of {subagents_of}: no Claude agent files found in {directory}")
    if found.empty:
        raise _fail(f"{directory}: no AgentConfig manifests nor Claude agent files found")

    ws = _workspace(repo, state_dir)
    stored = _stored_agents(ws)
    resources = [agent.resource for agent in found.agent_configs]
    if subagents_of is not None:
        imported = {r.name: r for r in resources}
        target = imported.get(subagents_of) or stored.get(subagents_of)
        if target is None:
            raise _fail(
                f"--subagents-of: AgentConfig {subagents_of!r} not found; "
                + _known(set(stored) | set(imported))
            )
        merged = _with_sub_agents(target, found)
        resources = [r for r in resources if r.name != subagents_of] + [merged]

    if dry_run:
        results = {r.name: _predict(r, stored.get(r.name)) for r in resources}
    else:
        with ws.open_store() as store:
            results = _apply(store, resources)
    rows = [Row(KIND, r.name, *results[r.name]) for r in resources]
    if subagents_of is not None:
        generation = results[subagents_of][1]
        rows.extend(_sub_agent_rows(subagents_of, found, stored.get(subagents_of), generation))
    console.print(_import_table(rows, dry_run))
    if dry_run:
        err_console.print("dry run: nothing was stored")


# --- set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    option: str
    path: tuple[str, ...]
    """Where in the spec, in wire (camelCase) names."""
    value: Any
    """None removes the field (back to its default)."""


def _changes(
    instructions: str | None,
    instructions_file: Path | None,
    tools_enabled: str | None,
    tool_restrictions: str | None,
    model: str | None,
    permission_mode: str | None,
    numbers: dict[str, tuple[tuple[str, ...], int | float | None]],
) -> list[Change]:
    from .claude_files import split_tools

    changes: list[Change] = []
    if instructions is not None and instructions_file is not None:
        raise _fail("--instructions and --instructions-file: give one, not both", EXIT_BAD_INPUT)
    if instructions_file is not None:
        try:
            instructions = instructions_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"--instructions-file: cannot read {exc}", EXIT_BAD_INPUT) from exc
    if instructions is not None:
        option = "--instructions-file" if instructions_file is not None else "--instructions"
        changes.append(Change(option, ("specializedInstructions",), instructions))
    if tools_enabled is not None:
        changes.append(Change("--tools-enabled", ("toolsEnabled",), split_tools(tools_enabled)))
    if tool_restrictions is not None:
        changes.append(
            Change("--tool-restrictions", ("toolRestrictions",), split_tools(tool_restrictions))
        )
    # An empty string clears a text setting: the executor's default applies again.
    if model is not None:
        changes.append(Change("--model", ("baseExecutor", "model"), model or None))
    if permission_mode is not None:
        changes.append(
            Change("--permission-mode", ("baseExecutor", "permissionMode"), permission_mode or None)
        )
    for option, (path, value) in numbers.items():
        if value is not None:
            changes.append(Change(option, path, value))
    return changes


def _edit(spec: dict[str, Any], change: Change) -> None:
    node = spec
    for key in change.path[:-1]:
        node = node.setdefault(key, {})
    if change.value is None:
        node.pop(change.path[-1], None)
    else:
        node[change.path[-1]] = change.value


def _blame(exc: ValidationError, changes: list[Change]) -> list[str]:
    """Each validation error as the option that caused it, which is what the user typed."""
    messages = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        reason = str(err["msg"]).removeprefix("Value error, ")
        spec_loc = loc[1:] if loc[:1] == ("spec",) else loc
        # A field's own error sits at its path; a model check (permissionMode against the
        # executor type) sits at the enclosing object: either way the option's path starts so.
        option = next(
            (
                c.option
                for c in changes
                if c.path[: len(spec_loc)] == spec_loc or spec_loc[: len(c.path)] == c.path
            ),
            None,
        )
        messages.append(f"{option or '.'.join(loc)}: {reason}")
    return messages


@agents_app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="The AgentConfig to change.")],
    instructions: Annotated[
        str | None, typer.Option("--instructions", help="Specialised instructions (text).")
    ] = None,
    instructions_file: Annotated[
        Path | None,
        typer.Option("--instructions-file", help="Specialised instructions, read from a file."),
    ] = None,
    tools_enabled: Annotated[
        str | None,
        typer.Option("--tools-enabled", help="Comma-separated tools it may use; '' clears."),
    ] = None,
    tool_restrictions: Annotated[
        str | None,
        typer.Option(
            "--tool-restrictions",
            help="Comma-separated tools it may not use; '' clears.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The executor's model; '' unsets it.")
    ] = None,
    permission_mode: Annotated[
        str | None,
        typer.Option("--permission-mode", help="The CLI's permission mode; '' unsets it."),
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option("--max-turns", help="Model turns a run may take.")
    ] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", help="Memory limit of a run, in MiB.")
    ] = None,
    cpu_cores: Annotated[
        float | None, typer.Option("--cpu-cores", help="CPU limit of a run, in cores.")
    ] = None,
    disk_mb: Annotated[
        int | None, typer.Option("--disk-mb", help="Disk limit of a run, in MiB.")
    ] = None,
    timeout_seconds: Annotated[
        int | None,
        typer.Option("--timeout-seconds", help="Time limit of a run when its stage sets none."),
    ] = None,
    max_parallel_tasks: Annotated[
        int | None,
        typer.Option("--max-parallel-tasks", help="Runs it may have in flight at once."),
    ] = None,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Change only the named settings of agent NAME; its generation bumps only on a change."""
    from pydantic import ValidationError

    from ..models.agent import AgentConfig

    limits = ("environmentRequirements", "resourceLimits")
    changes = _changes(
        instructions,
        instructions_file,
        tools_enabled,
        tool_restrictions,
        model,
        permission_mode,
        {
            "--max-turns": (("baseExecutor", "maxTurns"), max_turns),
            "--memory-mb": ((*limits, "memoryMb"), memory_mb),
            "--cpu-cores": ((*limits, "cpuCores"), cpu_cores),
            "--disk-mb": ((*limits, "diskMb"), disk_mb),
            "--timeout-seconds": (("timeoutSeconds",), timeout_seconds),
            "--max-parallel-tasks": (("maxParallelTasks",), max_parallel_tasks),
        },
    )
    if not changes:
        raise _fail("nothing to set: give at least one setting to change", EXIT_BAD_INPUT)
    ws = _workspace(repo, state_dir)
    if not ws.has_store:
        raise _fail(f"AgentConfig {name!r} not found (no store in {ws.state_dir})")
    with ws.open_store() as store:
        current = store.get(KIND, name)
        if current is None:
            known = _known(a.name for a in store.list(KIND))
            raise _fail(f"AgentConfig {name!r} not found; {known}")
        assert isinstance(current, AgentConfig)
        body = current.to_wire()
        body.pop("status", None)
        for change in changes:
            _edit(body["spec"], change)
        try:
            changed = AgentConfig.model_validate(body)
        except ValidationError as exc:
            for message in _blame(exc, changes):
                print_error(message)
            raise typer.Exit(EXIT_BAD_INPUT) from exc
        if changed.spec.to_wire() == current.spec.to_wire():
            console.print(f"agentconfig/{name}: unchanged")
            return
        result = _apply(store, [changed])
    console.print(f"agentconfig/{name}: generation {result[name][1]}")


# --- list ----------------------------------------------------------------------------------


def _summary(agent: AgentConfig) -> dict[str, Any]:
    spec = agent.spec
    return {
        "name": agent.name,
        "agentType": spec.agent_type.value,
        "executor": spec.base_executor.type.value,
        "model": spec.base_executor.model,
        "generation": agent.metadata.generation,
        "maxParallelTasks": spec.max_parallel_tasks,
        "subAgents": sorted(spec.sub_agents),
    }


@agents_app.command("list")
def list_(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="json or yaml instead of a table.")
    ] = None,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Every stored agent: type, executor, model, generation, parallel cap, sub-agents."""
    if output not in (None, "json", "yaml"):
        raise _fail(f"--output: expected json or yaml, got {output!r}", EXIT_BAD_INPUT)
    agents = _stored_agents(_workspace(repo, state_dir))
    rows = [_summary(agent) for _name, agent in sorted(agents.items())]
    if output == "json":
        console.print(json.dumps(rows, indent=2), soft_wrap=True)
        return
    if output == "yaml":
        import yaml

        console.print(yaml.safe_dump(rows, sort_keys=False), soft_wrap=True, end="")
        return
    if not rows:
        err_console.print("No agents found.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in (
        "NAME",
        "TYPE",
        "EXECUTOR",
        "MODEL",
        "GENERATION",
        "MAX-PARALLEL",
        "SUB-AGENTS",
    ):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row["name"],
            row["agentType"],
            row["executor"],
            row["model"] or "-",
            str(row["generation"] or "-"),
            str(row["maxParallelTasks"] or "-"),
            ",".join(row["subAgents"]) or "-",
        )
    console.print(table)


@agents_app.command("command")
def command(
    name: Annotated[str, typer.Argument(help="The AgentConfig whose run to show.")],
    task: Annotated[
        str | None, typer.Option("--task", help="A stored AgentTask; default: an example.")
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", help="A stage of the task's workflow; default: the first it may take."
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json.")] = "text",
    write_files: Annotated[
        bool,
        typer.Option(
            "--write-files",
            help="Also write the run's context files (prompt.md, the CLI's config) where the "
            "command expects them, so it can be run by hand.",
        ),
    ] = False,
    repo: RepoOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print the exact argv, environment (secrets masked) and stdin a run of NAME would use."""
    import shlex

    from ..core.planning import task_workflow
    from ..executors.base import InvalidAgentConfigError
    from ..models import AgentTask, Project, TicketBatch, Workflow
    from .preview import preview, stage_for

    if output not in ("text", "json"):
        raise _fail(f"--output: {output!r} is not one of text, json", EXIT_BAD_INPUT)
    ws = _workspace(repo, state_dir)
    agents = _stored_agents(ws)
    agent = agents.get(name)
    if agent is None:
        raise _fail(f"AgentConfig {name!r} not found; {_known(agents)}")
    task_obj: AgentTask | None = None
    workflow = None
    worktree = ws.repo
    with ws.open_store() as store:
        if task is not None:
            found = store.get("AgentTask", task)
            if not isinstance(found, AgentTask):
                raise _fail(f"--task: AgentTask {task!r} not found")
            task_obj = found
            batch = (
                store.get("TicketBatch", found.spec.batch_ref.name)
                if found.spec.batch_ref
                else None
            )
            project_name = (
                batch.spec.project_ref.name
                if isinstance(batch, TicketBatch)
                else (found.spec.project_ref.name if found.spec.project_ref else None)
            )
            project = store.get("Project", project_name) if project_name else None
            workflows = {w.name: w for w in store.list("Workflow") if isinstance(w, Workflow)}
            workflow = task_workflow(
                found,
                batch if isinstance(batch, TicketBatch) else None,
                project if isinstance(project, Project) else None,
                workflows,
            )
            worktree = ws.state_dir / "worktrees" / found.name
    try:
        chosen = stage_for(agent, workflow, stage)
    except KeyError:
        known = ", ".join(s.name for s in workflow.spec.stages) if workflow else "none"
        raise _fail(f"--stage: no stage {stage!r} (stages: {known})") from None
    try:
        shown = preview(
            agent,
            task=task_obj,
            stage=chosen,
            worktree=worktree,
            state_dir=ws.state_dir,
            write_files=write_files,
        )
    except (InvalidAgentConfigError, ValueError) as exc:
        raise _fail(f"agent {name!r}: {exc}", EXIT_BAD_INPUT) from exc
    if output == "json":
        console.print_json(json.dumps(shown.to_json()))
        return
    version = f" {shown.cli_version}" if shown.cli_version else ""
    lines = [
        f"# agent {shown.agent} (generation {shown.generation or '-'}), executor "
        f"{shown.executor}{version}, run {shown.run}",
        f"cd {shlex.quote(shown.cwd)}",
        *(f"{k}={shlex.quote(v)}" for k, v in shown.env.items()),
        shlex.join(shown.argv) + f" < {shlex.quote(shown.stdin_file)}",
        f"# stdin: the prompt, {shown.stdin_chars} characters",
    ]
    if shown.inherited_env:
        lines.append(
            "# inherited from this environment: "
            + ", ".join(f"{k}={v}" for k, v in shown.inherited_env.items())
        )
    if shown.files:
        written = "written" if write_files else "written at the start of the run"
        lines.append(f"# files {written}: " + ", ".join(shown.files))
    lines.extend(f"# ignored: {setting}" for setting in shown.ignored)
    console.print("\n".join(lines), soft_wrap=True)
