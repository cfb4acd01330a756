"""The task context as files outside the worktree, where an agent can reread it at any time.

Outside, so that `git add -A` never commits it.
"""

from __future__ import annotations

from pathlib import Path

from ..models.run import RunKind
from .prompt import agent_text, stage_text, task_text
from .refinement import tickets_json
from .spec import RunSpec


def write_context(spec: RunSpec, prompt: str, extra_files: dict[str, str] | None = None) -> None:
    """Write task.md, stage.md, agent.md, prompt.md (tickets.json too for a refinement).

    `extra_files` are an executor's own (an MCP config, say), named relative to the folder.
    """
    folder = Path(spec.context_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {
        "task.md": task_text(spec),
        "stage.md": stage_text(spec),
        "agent.md": agent_text(spec),
        "prompt.md": prompt,
    }
    if spec.kind is RunKind.REFINEMENT:
        files["tickets.json"] = tickets_json(spec.tickets) + "\n"
    files.update(extra_files or {})
    for name, text in files.items():
        if text is not None:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")


def context_inside_worktree(spec: RunSpec) -> bool:
    """True when the context dir would land in the worktree and be committed with the work."""
    context = Path(spec.context_dir).resolve()
    worktree = Path(spec.worktree).resolve()
    return context == worktree or worktree in context.parents
