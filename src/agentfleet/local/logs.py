"""`agentfleet logs`: a run's normalised events, as they were written and as they come."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from .engine import RunFiles
from .store import RunRecord
from .workspace import Workspace

POLL_SECONDS = 0.2


class LogNotFoundError(LookupError):
    pass


def format_event(line: str) -> str:
    """One JSON line as `time type text`; a line that is not an event is shown as it is."""
    try:
        event = json.loads(line)
    except ValueError:
        return line.rstrip("\n")
    if not isinstance(event, dict):
        return line.rstrip("\n")
    stamp = str(event.get("time", ""))[11:19]
    kind = str(event.get("type", "?"))
    text = str(event.get("text", ""))
    if event.get("tool"):
        text = f"{event['tool']}: {text}"
    return f"{stamp} {kind:<11} {text}".rstrip()


def pick_run(runs: list[RunRecord], task: str, stage: str | None, attempt: int | None) -> RunRecord:
    mine = [r for r in runs if r.task == task or (r.task is None and r.batch == task)]
    if not mine:
        raise LogNotFoundError(f"no run of {task!r} yet")
    if stage is not None:
        stages = sorted({r.stage for r in mine})
        mine = [r for r in mine if r.stage == stage]
        if not mine:
            raise LogNotFoundError(
                f"--stage: no run of stage {stage!r} (stages run: {', '.join(stages)})"
            )
    if attempt is not None:
        numbers = sorted({r.attempt for r in mine})
        mine = [r for r in mine if r.attempt == attempt]
        if not mine:
            raise LogNotFoundError(f"--attempt: no attempt {attempt} (attempts: {numbers})")
    return max(mine, key=lambda r: (r.created, r.attempt))


def follow_log(
    ws: Workspace, task: str, stage: str | None, attempt: int | None, follow: bool
) -> Iterator[str]:
    if not ws.has_store:
        raise LogNotFoundError(f"no run of {task!r} yet (no store in {ws.state_dir})")
    store = ws.open_store()
    try:
        record = pick_run(store.runs(), task, stage, attempt)
        path = RunFiles.of(ws.state_dir, record.name).events
        position = 0
        partial = ""
        while True:
            done = not follow or (
                (current := store.run(record.name)) is None or current.phase.finished
            )
            if path.exists():
                with path.open() as handle:
                    handle.seek(position)
                    chunk = handle.read()
                    position = handle.tell()
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                for line in lines:
                    if line.strip():
                        yield format_event(line)
            if done:
                if partial.strip():
                    yield format_event(partial)
                return
            time.sleep(POLL_SECONDS)
    finally:
        store.close()
