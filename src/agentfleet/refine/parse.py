"""Reading a refinement agent's answer, ticket by ticket.

Agents wrap JSON in prose and markdown fences and sometimes show a draft first: without
structured output, the answer is the LAST top-level JSON object with a `tickets` list. Each
requested ticket is judged on its own, so one bad entry costs a retry of that ticket only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..models.run import RefinedTicket
from .schema import RefinedTicketAnswer

MAX_ERRORS_SHOWN = 3


class RefinementError(ValueError):
    """The answer as a whole is unusable (no JSON object with a `tickets` list)."""


@dataclass
class ParsedRefinement:
    tickets: list[RefinedTicket] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def last_tickets_object(text: str) -> dict[str, Any] | None:
    """The last top-level JSON object in `text` that has a `tickets` list (fences tolerated)."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    index = text.find("{")
    while index != -1:
        try:
            obj, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(obj, dict) and isinstance(obj.get("tickets"), list):
            found = obj
        index = text.find("{", end)
    return found


def _location(index: int, loc: tuple[int | str, ...]) -> str:
    path = f"tickets[{index}]"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _validation_message(index: int, exc: ValidationError) -> str:
    errors = exc.errors()
    shown = [f"{_location(index, e['loc'])}: {e['msg']}" for e in errors[:MAX_ERRORS_SHOWN]]
    hidden = len(errors) - MAX_ERRORS_SHOWN
    return "; ".join(shown) + (f" (+{hidden} more)" if hidden > 0 else "")


def answer_object(text: str, structured: Any = None) -> dict[str, Any]:
    """The answer: the CLI's structured output when it gave one, else the last object in text."""
    if isinstance(structured, dict) and isinstance(structured.get("tickets"), list):
        return structured
    reply = last_tickets_object(text)
    if reply is None:
        raise RefinementError('no JSON object with a "tickets" list in the agent\'s answer')
    return reply


def parse_refinement(
    text: str,
    *,
    requested: Sequence[str],
    known: Collection[str],
    structured: Any = None,
) -> ParsedRefinement:
    """The usable refined tickets among `requested`, and why each other one is not usable.

    `known` is every ticket id of the batch: a dependency must name one of them.
    """
    reply = answer_object(text, structured)
    wanted = set(requested)
    parsed = ParsedRefinement()
    seen: dict[str, int] = {}
    for index, item in enumerate(reply["tickets"]):
        ticket_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ticket_id, str) or ticket_id not in wanted:
            continue
        if ticket_id in seen:
            parsed.errors[ticket_id] = (
                f"tickets[{index}].id: {ticket_id!r} appears twice (first at "
                f"tickets[{seen[ticket_id]}]); give one entry per ticket"
            )
            continue
        seen[ticket_id] = index
        try:
            answer = RefinedTicketAnswer.model_validate_json(json.dumps(item))
        except ValidationError as exc:
            parsed.errors[ticket_id] = _validation_message(index, exc)
            continue
        problem = _dependency_problem(index, answer, known)
        if problem:
            parsed.errors[ticket_id] = problem
            continue
        parsed.tickets.append(RefinedTicket.model_validate(answer.model_dump(by_alias=True)))
    for ticket_id in requested:
        if ticket_id not in seen:
            parsed.errors[ticket_id] = f"the answer has no entry with id {ticket_id!r}"
    return parsed


def _dependency_problem(index: int, answer: RefinedTicketAnswer, known: Collection[str]) -> str:
    for dep in answer.dependencies:
        if dep == answer.id:
            return f"tickets[{index}].dependencies: {dep!r} depends on itself"
        if dep not in known:
            return f"tickets[{index}].dependencies: {dep!r} is not a ticket of this batch"
    return ""
