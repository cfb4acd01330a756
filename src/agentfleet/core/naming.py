"""The names agentfleet derives: tasks, runs, branches. One function each, used by every driver."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
_INVALID = re.compile(r"[^a-z0-9-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fit(prefix: str, suffix: str, whole: str) -> str:
    """`prefix + suffix`, shortened with a hash of `whole` when it would pass 63 characters.

    63 is the limit of a label value and a Pod's hostname; a hash keeps shortened names
    unique and deterministic.
    """
    name = prefix + suffix
    if len(name) <= MAX_NAME:
        return name
    keep = MAX_NAME - len(suffix) - 9
    if keep < 1:
        return f"{name[: MAX_NAME - 9].rstrip('-.')}-{_digest(whole)}"
    return f"{prefix[:keep].rstrip('-.')}-{_digest(whole)}{suffix}"


def ticket_slug(ticket_id: str) -> str:
    """A ticket id as it appears in names: lowercase, anything else than [a-z0-9-] as '-'."""
    slug = _INVALID.sub("-", ticket_id.lower()).strip("-")
    return slug or _digest(ticket_id)


def task_name(batch: str, ticket_id: str) -> str:
    """The AgentTask that a batch's ticket becomes: `<batch>-<ticket>`."""
    return _fit(f"{batch}-{ticket_slug(ticket_id)}", "", f"{batch}/{ticket_id}")


def run_name(owner: str, stage: str, attempt: int) -> str:
    """One attempt of one stage of one task: `<task>-<stage>-<attempt>`, the Pod or process name."""
    return _fit(owner, f"-{stage}-{attempt}", f"{owner}/{stage}/{attempt}")


REFINE_STAGE = "refine"


def refinement_run_name(batch: str, attempt: int) -> str:
    """A batch's refinement run is a run of the pseudo-stage `refine` owned by the batch."""
    return run_name(batch, REFINE_STAGE, attempt)


def branch_name(batch: str, task: str) -> str:
    """The git branch a task's stages commit to."""
    return f"agentfleet/{batch}/{task}"
