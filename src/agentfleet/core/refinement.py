"""A batch's refinement: one agent run turns raw tickets into specified tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..models.batch import BatchPhase
from ..models.meta import AgentType
from ..models.run import Attempt, AttemptPhase, RefinedTicket, RunKind, RunPhase
from .actions import RunRequest, StartRun
from .naming import REFINE_STAGE, refinement_run_name
from .planning import check_refined

if TYPE_CHECKING:
    from .reconcile import BatchReconciler

REFINEMENT_ATTEMPTS = 2


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


def refine(reconciler: BatchReconciler) -> None:
    """Fold the running refinement's outcome in, or start the next attempt when a slot is free.

    The agent's answer is data: it is checked whole before any task is planned from it.
    """
    attempts = reconciler.status.refinement_attempts
    last = attempts[-1] if attempts else None
    if last is not None and last.phase == AttemptPhase.RUNNING:
        run = reconciler.ctx.runs_by_name.get(last.run_name)
        if run is None:
            request_refinement(reconciler, last)
            return
        config = reconciler.world.snapshot.agents.get(last.agent)
        timeout = config.spec.timeout_seconds if config else None
        started = run.start_time or last.start_time or reconciler.ctx.now
        overdue = timeout is not None and reconciler.ctx.now >= started + timedelta(seconds=timeout)
        if not run.phase.finished and not overdue:
            return
        last.finish_time = run.finish_time or reconciler.ctx.now
        result = run.result
        refined = result.refined_tickets if result else None
        problem = None
        if not run.phase.finished:
            reconciler.ctx.cancel(run.name, "DeadlineExceeded", f"refinement timeout of {timeout}s")
            problem = f"ran past the refinement timeout of {timeout}s"
            last.reason = "DeadlineExceeded"
        elif (
            run.phase != RunPhase.SUCCEEDED
            or result is None
            or (result.outcome != AttemptPhase.SUCCEEDED)
        ):
            problem = (result.message if result else "") or run.message or "refinement failed"
            last.reason = (result.reason if result else "") or run.reason or "Error"
        elif refined is None:
            problem, last.reason = "the refinement returned no tickets", "InvalidRefinement"
        else:
            problem = check_refined(reconciler.batch, refined)
            last.reason = "InvalidRefinement" if problem else "Succeeded"
        if problem is None and refined is not None:
            last.phase = AttemptPhase.SUCCEEDED
            reconciler.plan(refined)
            return
        last.phase = AttemptPhase.FAILED
        last.message = problem or ""
        reconciler.event("RefinementFailed", problem or "", warning=True)
        if len(attempts) >= REFINEMENT_ATTEMPTS:
            reconciler.set_phase(BatchPhase.FAILED, "RefinementFailed", problem or "")
            return
    if reconciler.world.batch_in_flight(reconciler.batch.name) >= reconciler.spec.parallel_limit:
        return
    agent = refinement_agent(reconciler)
    assert agent is not None
    free = reconciler.world.agent_free.get(agent)
    if free is not None and free <= 0:
        return
    number = len(attempts) + 1
    attempt = Attempt(
        attempt=number,
        agent=agent,
        run_name=refinement_run_name(reconciler.batch.name, number),
        start_time=reconciler.ctx.now,
    )
    attempts.append(attempt)
    if free is not None:
        reconciler.world.agent_free[agent] = free - 1
    reconciler.world.in_flight[attempt.run_name] = (agent, reconciler.batch.name)
    request_refinement(reconciler, attempt)
    reconciler.event("RunStarted", f"run {attempt.run_name} started with agent {agent}")


def request_refinement(reconciler: BatchReconciler, attempt: Attempt) -> None:
    agent = reconciler.world.snapshot.agents.get(attempt.agent)
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
            )
        )
    )


def refined_tickets(reconciler: BatchReconciler) -> list[RefinedTicket] | None:
    for attempt in reversed(reconciler.status.refinement_attempts):
        if attempt.phase == AttemptPhase.SUCCEEDED:
            run = reconciler.ctx.runs_by_name.get(attempt.run_name)
            if run is not None and run.result is not None:
                return run.result.refined_tickets
    return None
