"""A batch's refinement: agent runs that turn raw tickets into specified tasks, group by group.

The refinement strategy splits the tickets into groups and orders them in waves:
Sequential (groups one after another), ParallelBatch (groups of batchSize side by side) and
DependencyAware (a ticket after the tickets it depends on). Every run sees every ticket and
the tickets refined before it, and answers for its group. A ticket whose answer is unusable
is asked for once more with the errors, then marked InvalidRefinement; a run that fails for
any other reason is retried once, then fails the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ..models.batch import BatchPhase, ExecutionStrategy, RefinementAttempt, TicketBatch
from ..models.meta import AgentType
from ..models.run import AttemptPhase, RefinedTicket, RunKind, RunPhase
from .actions import RunRequest, StartRun
from .dag import find_cycle, topological_order
from .naming import REFINE_STAGE, refinement_run_name

if TYPE_CHECKING:
    from .reconcile import BatchReconciler

TRIES_PER_TICKET = 2
GROUP_SIZE = 10
"""Tickets per refinement run when the batch sets no size: every run still sees every ticket,
and ten refined tickets fit a Pod's 4 KiB termination message once gzipped."""
INVALID_REFINEMENT = "InvalidRefinement"


@dataclass(frozen=True)
class Group:
    wave: int
    tickets: tuple[str, ...]


@dataclass
class TicketState:
    """A ticket's refinement so far. Unusable answers and failed runs count apart: two of
    either give up (the ticket, or the batch), a mix of one each is tried again."""

    refined: RefinedTicket | None = None
    invalid: int = 0
    crashed: int = 0
    reason: str = ""
    message: str = ""
    running: bool = False

    @property
    def failures(self) -> int:
        return self.invalid + self.crashed

    def given_up(self) -> bool:
        done = self.invalid >= TRIES_PER_TICKET or self.crashed >= TRIES_PER_TICKET
        return self.refined is None and not self.running and done

    def settled(self) -> bool:
        return self.refined is not None or self.given_up()


def _chunks(ids: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(ids[k : k + size]) for k in range(0, len(ids), size)]


def refinement_groups(batch: TicketBatch) -> list[Group]:
    """The groups of ticket ids, in ticket order, each with the wave it may start in."""
    spec = batch.spec
    strategy = spec.refinement.strategy or spec.strategy
    size = spec.refinement.batch_size
    if strategy is ExecutionStrategy.PARALLEL_BATCH:
        size = size or spec.batch_size
    size = size or GROUP_SIZE
    ids = [t.id for t in spec.tickets]
    if strategy is ExecutionStrategy.SEQUENTIAL:
        return [Group(i, c) for i, c in enumerate(_chunks(ids, size))]
    if strategy is ExecutionStrategy.PARALLEL_BATCH:
        return [Group(0, c) for c in _chunks(ids, size)]
    graph = {t.id: list(t.dependencies) for t in spec.tickets}
    level: dict[str, int] = {}
    for ticket_id in topological_order(graph):
        level[ticket_id] = 1 + max((level[d] for d in graph[ticket_id]), default=-1)
    groups: list[Group] = []
    for wave in range(max(level.values(), default=-1) + 1):
        members = [i for i in ids if level[i] == wave]
        groups.extend(Group(wave, c) for c in _chunks(members, size))
    return groups


def refinement_agent(reconciler: BatchReconciler) -> str | None:
    """The named agent, else the batch's assignment for the type, else the first of the type."""
    snap = reconciler.world.snapshot
    refinement = reconciler.spec.refinement
    if refinement.agent_ref is not None:
        return refinement.agent_ref.name if refinement.agent_ref.name in snap.agents else None
    agent_type = refinement.agent_type or AgentType.DEVELOPMENT
    assigned = reconciler.spec.agent_assignments.get(agent_type)
    if assigned is not None:
        return assigned if assigned in snap.agents else None
    of_type = sorted(n for n, a in snap.agents.items() if a.spec.agent_type == agent_type)
    return of_type[0] if of_type else None


def ticket_states(reconciler: BatchReconciler) -> dict[str, TicketState]:
    """Each ticket's refinement so far, from the attempts and their runs' results."""
    states = {t.id: TicketState() for t in reconciler.spec.tickets}
    runs = reconciler.ctx.runs_by_name
    for attempt in reconciler.status.refinement_attempts:
        if attempt.phase == AttemptPhase.RUNNING:
            for ticket_id in attempt.tickets:
                if ticket_id in states:
                    states[ticket_id].running = True
            continue
        run = runs.get(attempt.run_name)
        refined = {}
        if attempt.phase == AttemptPhase.SUCCEEDED and run is not None and run.result is not None:
            refined = {t.id: t for t in run.result.refined_tickets or []}
        for ticket_id in attempt.tickets:
            state = states.get(ticket_id)
            if state is None or state.refined is not None:
                continue
            if ticket_id in refined:
                state.refined = refined[ticket_id]
                continue
            if attempt.phase == AttemptPhase.SUCCEEDED or attempt.reason == INVALID_REFINEMENT:
                state.invalid += 1
                state.reason = INVALID_REFINEMENT
                state.message = attempt.invalid.get(ticket_id, attempt.message or "no answer")
            else:
                state.crashed += 1
                state.reason = attempt.reason or "Error"
                state.message = attempt.message
    return states


def _fold(reconciler: BatchReconciler, attempt: RefinementAttempt) -> None:
    """Record how a running attempt ended, or cancel it past its agent's timeout."""
    run = reconciler.ctx.runs_by_name.get(attempt.run_name)
    if run is None:
        request_refinement(reconciler, attempt)
        return
    config = reconciler.world.snapshot.agents.get(attempt.agent)
    timeout = config.spec.timeout_seconds if config else None
    started = run.start_time or attempt.start_time or reconciler.ctx.now
    overdue = timeout is not None and reconciler.ctx.now >= started + timedelta(seconds=timeout)
    if not run.phase.finished and not overdue:
        return
    attempt.finish_time = run.finish_time or reconciler.ctx.now
    result = run.result
    if result is not None:
        attempt.tokens = result.tokens.total if result.tokens else None
        attempt.token_usage = result.tokens
        attempt.cost_usd = result.cost_usd
        if result.agent_generation is not None:
            attempt.agent_generation = result.agent_generation
    if not run.phase.finished:
        reconciler.ctx.cancel(run.name, "DeadlineExceeded", f"refinement timeout of {timeout}s")
        attempt.phase, attempt.reason = AttemptPhase.FAILED, "DeadlineExceeded"
        attempt.message = f"ran past the refinement timeout of {timeout}s"
    elif run.phase == RunPhase.SUCCEEDED and result and result.outcome == AttemptPhase.SUCCEEDED:
        attempt.phase, attempt.reason = AttemptPhase.SUCCEEDED, "Succeeded"
        usable = {t.id for t in result.refined_tickets or []}
        attempt.invalid = {
            t: result.refinement_errors.get(t, "the answer has no usable entry for it")
            for t in attempt.tickets
            if t not in usable
        }
        attempt.message = result.message
    else:
        attempt.phase = AttemptPhase.FAILED
        attempt.reason = (result.reason if result else "") or run.reason or "Error"
        attempt.message = (result.message if result else "") or run.message or "refinement failed"
    if attempt.phase == AttemptPhase.FAILED or attempt.invalid:
        problem = (
            attempt.message
            if attempt.phase == AttemptPhase.FAILED
            else ("unusable answers for " + ", ".join(sorted(attempt.invalid)))
        )
        reconciler.event("RefinementFailed", f"run {attempt.run_name}: {problem}", warning=True)


def refine(reconciler: BatchReconciler) -> None:
    """Fold finished runs in, start the groups whose wave has come, plan when all are done."""
    for attempt in reconciler.status.refinement_attempts:
        if attempt.phase == AttemptPhase.RUNNING:
            _fold(reconciler, attempt)
    states = ticket_states(reconciler)
    broken = [
        (ticket_id, s)
        for ticket_id, s in states.items()
        if s.refined is None and not s.running and s.crashed >= TRIES_PER_TICKET
    ]
    if broken:
        ticket_id, state = broken[0]
        reconciler.set_phase(
            BatchPhase.FAILED,
            "RefinementFailed",
            f"refining ticket {ticket_id} failed {state.failures} times ({state.reason}): "
            f"{state.message}",
        )
        return
    if all(s.settled() for s in states.values()):
        _finish(reconciler, states)
        return
    for group in _next_groups(reconciler, states):
        if not _start(reconciler, group, states):
            return


def _next_groups(reconciler: BatchReconciler, states: dict[str, TicketState]) -> list[Group]:
    """Retries first (one run per failed group), then untouched groups whose wave has come."""
    attempted = {t for a in reconciler.status.refinement_attempts for t in a.tickets}
    ready: list[Group] = []
    retried: set[str] = set()
    for attempt in reconciler.status.refinement_attempts:
        if attempt.phase == AttemptPhase.RUNNING:
            continue
        again = tuple(
            t
            for t in attempt.tickets
            if t not in retried
            and states[t].refined is None
            and not states[t].running
            and not states[t].given_up()
        )
        if again:
            retried.update(again)
            ready.append(Group(attempt.wave, again))
    groups = refinement_groups(reconciler.batch)
    waves_done = {
        g.wave for g in groups if all(t in attempted and states[t].settled() for t in g.tickets)
    }
    for group in groups:
        if any(t in attempted for t in group.tickets):
            continue
        if all(w in waves_done for w in range(group.wave)):
            ready.append(group)
    return ready


def _start(reconciler: BatchReconciler, group: Group, states: dict[str, TicketState]) -> bool:
    """Start one run for `group` if a slot is free; False when none is (stop starting)."""
    if reconciler.world.batch_in_flight(reconciler.batch.name) >= reconciler.spec.parallel_limit:
        return False
    agent = refinement_agent(reconciler)
    assert agent is not None
    free = reconciler.world.agent_free.get(agent)
    if free is not None and free <= 0:
        return False
    attempts = reconciler.status.refinement_attempts
    number = len(attempts) + 1
    config = reconciler.world.snapshot.agents.get(agent)
    attempt = RefinementAttempt(
        attempt=number,
        agent=agent,
        run_name=refinement_run_name(reconciler.batch.name, number),
        start_time=reconciler.ctx.now,
        agent_generation=config.metadata.generation if config else None,
        tickets=list(group.tickets),
        wave=group.wave,
    )
    attempts.append(attempt)
    for ticket_id in group.tickets:
        states[ticket_id].running = True
    if free is not None:
        reconciler.world.agent_free[agent] = free - 1
    reconciler.world.in_flight[attempt.run_name] = (agent, reconciler.batch.name)
    request_refinement(reconciler, attempt)
    reconciler.event(
        "RunStarted",
        f"run {attempt.run_name} started with agent {agent} to refine "
        f"{len(group.tickets)} ticket(s)",
    )
    return True


def _context(reconciler: BatchReconciler, attempt: RefinementAttempt) -> tuple[RefinedTicket, ...]:
    """Tickets refined by attempts that ended before this one started: it builds on them.

    Derived from the recorded attempts alone, so asking for the same run again (its first
    request was lost) asks for exactly the same thing.
    """
    done: dict[str, RefinedTicket] = {}
    runs = reconciler.ctx.runs_by_name
    for earlier in reconciler.status.refinement_attempts:
        ended = earlier.finish_time is not None and (
            attempt.start_time is None or earlier.finish_time <= attempt.start_time
        )
        if earlier.attempt >= attempt.attempt or earlier.phase != AttemptPhase.SUCCEEDED:
            continue
        run = runs.get(earlier.run_name)
        if not ended or run is None or run.result is None:
            continue
        for ticket in run.result.refined_tickets or []:
            if ticket.id in earlier.tickets and ticket.id not in attempt.tickets:
                done.setdefault(ticket.id, ticket)
    order = {t.id: i for i, t in enumerate(reconciler.spec.tickets)}
    return tuple(sorted(done.values(), key=lambda t: order.get(t.id, len(order))))


def _feedback(reconciler: BatchReconciler, attempt: RefinementAttempt) -> tuple[str, ...]:
    """Why the previous answer for each of this attempt's tickets could not be used."""
    last: dict[str, str] = {}
    for earlier in reconciler.status.refinement_attempts:
        if earlier.attempt >= attempt.attempt or earlier.phase == AttemptPhase.RUNNING:
            continue
        for ticket_id in earlier.tickets:
            if ticket_id in earlier.invalid:
                last[ticket_id] = earlier.invalid[ticket_id]
            elif earlier.phase == AttemptPhase.FAILED and earlier.message:
                last[ticket_id] = earlier.message
    return tuple(f"{t}: {last[t]}" for t in attempt.tickets if t in last)


def request_refinement(reconciler: BatchReconciler, attempt: RefinementAttempt) -> None:
    agent = reconciler.world.snapshot.agents.get(attempt.agent)
    all_ids = [t.id for t in reconciler.spec.tickets]
    reconciler.ctx.actions.append(
        StartRun(
            RunRequest(
                name=attempt.run_name,
                kind=RunKind.REFINEMENT,
                batch=reconciler.batch.name,
                task=None,
                stage=REFINE_STAGE,
                attempt=attempt.attempt,
                agent=attempt.agent,
                project=reconciler.spec.project_ref.name,
                timeout_seconds=agent.spec.timeout_seconds if agent else None,
                tickets=tuple(attempt.tickets) if attempt.tickets != all_ids else (),
                refined=_context(reconciler, attempt),
                feedback=_feedback(reconciler, attempt),
            )
        )
    )


def merged_dependencies(
    batch: TicketBatch, refined: dict[str, RefinedTicket]
) -> dict[str, list[str]]:
    """Each ticket's explicit dependencies, then those its refinement inferred, without repeats."""
    merged: dict[str, list[str]] = {}
    known = {t.id for t in batch.spec.tickets}
    for ticket in batch.spec.tickets:
        deps = list(ticket.dependencies)
        inferred = refined[ticket.id].dependencies if ticket.id in refined else []
        deps.extend(d for d in inferred if d not in deps and d in known and d != ticket.id)
        merged[ticket.id] = deps
    return merged


def _finish(reconciler: BatchReconciler, states: dict[str, TicketState]) -> None:
    refined = {t: s.refined for t, s in states.items() if s.refined is not None}
    dependencies = merged_dependencies(reconciler.batch, refined)
    cycle = find_cycle(dependencies)
    if cycle:
        reconciler.set_phase(
            BatchPhase.FAILED,
            "DependencyCycle",
            "the refined tickets' dependencies form a cycle: " + " -> ".join(cycle),
        )
        return
    invalid = {t: s.message for t, s in states.items() if s.refined is None}  # all invalid
    reconciler.plan_refined(refined, dependencies, invalid)


def refined_tickets(reconciler: BatchReconciler) -> dict[str, RefinedTicket] | None:
    """The refined tickets once every ticket is settled (for re-creating lost tasks)."""
    states = ticket_states(reconciler)
    if not all(s.settled() for s in states.values()):
        return None
    return {t: s.refined for t, s in states.items() if s.refined is not None}
