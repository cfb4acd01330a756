"""The run's result file: why a run ended, small enough for a Pod's termination message.

A termination message is cut at 4 KiB, so messages are shortened before writing; the file is
replaced atomically, so a driver never reads half a result.
"""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from pathlib import Path

from ..models.run import RunResult

MESSAGE_CHARS = 500
CRITERION_MESSAGE_CHARS = 300
TERMINATION_MESSAGE_BYTES = 4096


class Reason(StrEnum):
    """Why a run ended: CamelCase, short, stable (drivers and humans key on them)."""

    SUCCEEDED = "Succeeded"
    AGENT_FAILED = "AgentFailed"
    CRITERIA_FAILED = "CriteriaFailed"
    OOM_KILLED = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    INVALID_REFINEMENT = "InvalidRefinement"
    COMMIT_FAILED = "CommitFailed"
    INVALID_SPEC = "InvalidSpec"
    EXECUTOR_UNAVAILABLE = "ExecutorUnavailable"
    STOPPED = "Stopped"
    RUNNER_ERROR = "RunnerError"


def shorten(text: str, limit: int) -> str:
    """Keep the head and the tail: an error's cause is often at the end of the output."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head - 5
    return f"{text[:head]} ... {text[-tail:]}"


def fit(result: RunResult) -> RunResult:
    """The result with messages shortened so a stage run's JSON stays under 4 KiB.

    A refinement result carries its tickets whole: cutting them would lose the work. When
    they do not fit as they are, they are gzipped (about four times smaller); a larger answer
    still goes to the file whole, and a Pod's driver reports its termination message as cut
    (ResultTooLarge) rather than guessing.
    """
    criteria = [
        c.model_copy(update={"message": shorten(c.message, CRITERION_MESSAGE_CHARS)})
        for c in result.criteria
    ]
    fitted = result.model_copy(
        update={"message": shorten(result.message, MESSAGE_CHARS), "criteria": criteria}
    )
    if fitted.refined_tickets and len(to_json(fitted).encode()) > TERMINATION_MESSAGE_BYTES:
        errors = {
            k: shorten(v, CRITERION_MESSAGE_CHARS) for k, v in fitted.refinement_errors.items()
        }
        fitted = fitted.model_copy(update={"refinement_errors": errors}).packed()
    for limit in (120, 40, 0):
        if len(to_json(fitted).encode()) <= TERMINATION_MESSAGE_BYTES:
            break
        fitted = fitted.model_copy(
            update={
                "criteria": [
                    c.model_copy(update={"message": shorten(c.message, limit) if limit else ""})
                    for c in fitted.criteria
                ]
            }
        )
    return fitted


def to_json(result: RunResult) -> str:
    return result.model_dump_json(by_alias=True, exclude_none=True)


def write_result(path: str | Path, result: RunResult) -> None:
    """Write the result atomically: a temporary file in the same folder, then os.replace.

    Where the target cannot be replaced (a Pod's /dev/termination-log is a mount point), write
    it in place: the kubelet reads it only after the container ended.
    """
    target = Path(path)
    text = to_json(fit(result)) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError:
        target.write_text(text, encoding="utf-8")
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        target.write_text(text, encoding="utf-8")
