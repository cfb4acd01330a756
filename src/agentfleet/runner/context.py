"""The task context as files outside the worktree, where an agent can reread it at any time.

Outside, so that `git add -A` never commits it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..models.run import RunKind
from ..refine.prompt import tickets_json
from .prompt import agent_text, stage_text, task_text
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
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    for name, text in (extra_files or {}).items():
        target = (folder / name).resolve()
        if folder.resolve() not in target.parents:
            raise ValueError(f"executor file {name!r} is outside the context dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        # 0600 from the first byte: these may hold a token.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)


def context_inside_worktree(spec: RunSpec) -> bool:
    """True when the context dir would land in the worktree and be committed with the work."""
    context = Path(spec.context_dir).resolve()
    worktree = Path(spec.worktree).resolve()
    return context == worktree or worktree in context.parents
