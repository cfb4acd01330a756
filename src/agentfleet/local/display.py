"""The live view of `agentfleet run`: a line per running task and a bar for the whole run."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..core.actions import RecordEvent
from ..models.task import TaskPhase
from .engine import LocalEngine
from .views import duration

_NOTEWORTHY = {
    "RunStarted",
    "RunSucceeded",
    "RunFailed",
    "ApprovalRequired",
    "Escalated",
    "RetryScheduled",
    "BatchSucceeded",
    "BatchFailed",
    "TaskFailed",
    "DependencyFailed",
}


class RunDisplay:
    """Live on a terminal; one line per noteworthy event elsewhere (CI logs, pipes)."""

    def __init__(self, console: Console, engine: LocalEngine, batches: list[str]) -> None:
        self.console = console
        self.engine = engine
        self.batches = batches
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.bar = self.progress.add_task("tasks", total=None)
        self.live: Live | None = None
        engine.on_event = self.event

    def __enter__(self) -> RunDisplay:
        if self.console.is_terminal:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(kind, exc, tb)

    def event(self, event: RecordEvent) -> None:
        if event.reason not in _NOTEWORTHY:
            return
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        style = "red" if event.type == "Warning" else "green"
        self.console.print(
            Text.assemble(
                f"{stamp} ", (f"{event.reason:<16}", style), f" {event.name}: {event.message}"
            ),
            highlight=False,
            soft_wrap=True,
        )

    def render(self) -> Group:
        tasks = [
            t
            for t in self.engine.cached("AgentTask")
            if t.spec.batch_ref is not None and t.spec.batch_ref.name in self.batches
        ]
        done = sum(1 for t in tasks if t.status and TaskPhase(t.status.phase or "Pending").terminal)
        self.progress.update(self.bar, total=max(len(tasks), 1), completed=done)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("task", "stage", "agent", "elapsed"):
            table.add_column(column, no_wrap=True)
        now = datetime.now(UTC)
        for record in self.engine.records.values():
            if record.phase.finished or record.batch not in self.batches:
                continue
            table.add_row(
                record.task or record.batch or "-",
                f"{record.stage} #{record.attempt}",
                record.agent,
                duration(record.start_time or record.created, now),
            )
        waiting = [
            t.name
            for t in tasks
            if t.status and t.status.phase in (TaskPhase.AWAITING_APPROVAL, TaskPhase.ESCALATED)
        ]
        parts: list[Table | Progress | Text] = [table, self.progress]
        if waiting:
            parts.append(Text(f"waiting for a human: {', '.join(waiting)}"))
        return Group(*parts)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())
