"""`agentfleet run`: apply, then step the engine until the batches are done, and report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from ..models import AgentTask, Project, TicketBatch
from ..models.meta import Resource
from .display import RunDisplay
from .engine import EngineBusyError, EngineOptions, LocalEngine
from .store import StoreError
from .views import print_summary
from .workspace import Workspace
from .worktrees import CleanupPolicy, WorktreeError

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
SETTLE_SECONDS = 10.0


def drive(
    ws: Workspace,
    resources: Sequence[Resource[Any, Any]],
    console: Console,
    err_console: Console,
    *,
    keep_succeeded: bool = False,
    remove_failed: bool = False,
    pool_size: int = 2,
    tick_seconds: float = 0.25,
) -> int:
    options = EngineOptions(
        tick_seconds=tick_seconds,
        pool_size=pool_size,
        policy=CleanupPolicy(keep_failed=not remove_failed, remove_succeeded=not keep_succeeded),
    )
    try:
        engine = LocalEngine(ws.repo, ws.state_dir, options)
    except (EngineBusyError, StoreError, WorktreeError, OSError) as exc:
        err_console.print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_FAILED
    try:
        for line in engine.store.apply(list(resources), datetime.now(UTC)):
            console.print(line, highlight=False)
        batches = [r.name for r in resources if isinstance(r, TicketBatch)]
        bases = {p.spec.repository.base_branch for p in resources if isinstance(p, Project)}
        if len(bases) == 1:
            engine.worktrees.warm(bases.pop())
        if not batches:
            console.print("no TicketBatch in these manifests: applied, nothing to run")
            return EXIT_OK
        engine.snapshot(datetime.now(UTC))
        for name, phase in engine.batch_phases(batches).items():
            if phase in ("Succeeded", "Failed"):
                console.print(
                    f"TicketBatch/{name} already ended {phase}; a finished batch does not run "
                    f"again (agentfleet delete batch {name}, then run, starts it afresh)"
                )
        with RunDisplay(console, engine, batches) as display:
            settle_until: float | None = None
            while True:
                engine.step()
                display.refresh()
                if engine.finished(batches):
                    live = [
                        r
                        for r in engine.records.values()
                        if r.batch in batches and not r.phase.finished
                    ]
                    if not live:
                        break
                    settle_until = settle_until or time.monotonic() + SETTLE_SECONDS
                    if time.monotonic() > settle_until:
                        break
                time.sleep(options.tick_seconds)
        tasks: list[AgentTask] = engine.cached("AgentTask")
        finished = [b for b in engine.cached("TicketBatch") if b.name in batches]
        print_summary(console, finished, tasks)
        planned_only = {b.name for b in finished if not b.spec.execute}
        phases = engine.batch_phases(batches)
        ok = all(
            p == "Succeeded" or (p == "Refined" and n in planned_only) for n, p in phases.items()
        )
        return EXIT_OK if ok else EXIT_FAILED
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: runs already started go on; run the same command again to pick up "
            "where this one stopped"
        )
        return EXIT_INTERRUPTED
    finally:
        engine.close()
