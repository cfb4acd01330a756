"""Which waiting work starts now: strategies, slots and parallel limits.

The reconciler hands over what is waiting and what is running; these functions pick, in a
fixed order, what may start without passing any limit. They know nothing of runs' outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..models.batch import ExecutionStrategy


class TaskInfo(NamedTuple):
    """What scheduling needs of a task; `order` is its position in the batch.

    A named tuple: a large batch builds thousands of these per call.
    """

    name: str
    priority: int
    order: int
    critical_path: float = 0.0
    wave: int | None = None


def ordering_key(strategy: ExecutionStrategy, task: TaskInfo) -> tuple[float, int, int, str]:
    """Who goes first among ready tasks.

    DependencyAware is list scheduling: the longest remaining critical path first (it bounds
    the makespan), then priority, then ticket order. The other strategies follow priority,
    then ticket order, as a queue a person would read.
    """
    if strategy is ExecutionStrategy.DEPENDENCY_AWARE:
        return (-task.critical_path, -task.priority, task.order, task.name)
    return (0.0, -task.priority, task.order, task.name)


@dataclass(frozen=True)
class Admission:
    """New tasks allowed to start, and for ParallelBatch the wave they were admitted into."""

    admitted: tuple[str, ...]
    wave: int | None = None


def admit(
    strategy: ExecutionStrategy,
    *,
    ready: Sequence[TaskInfo],
    active: int,
    unfinished_in_wave: int,
    current_wave: int | None,
    batch_size: int,
) -> Admission:
    """Which not-yet-started tasks, all of whose dependencies are satisfied, may start.

    - Sequential: one task at a time, so only when none is active.
    - ParallelBatch: waves with a barrier; a new wave of at most `batch_size` ready tasks is
      formed only once every task of the current wave has finished.
    - DependencyAware: every ready task, in no particular order; slots decide the rest.
    """
    if strategy is ExecutionStrategy.DEPENDENCY_AWARE:
        return Admission(tuple(t.name for t in ready))
    ordered = sorted(ready, key=lambda t: ordering_key(strategy, t))
    if strategy is ExecutionStrategy.SEQUENTIAL:
        if active or not ordered:
            return Admission(())
        return Admission((ordered[0].name,))
    if unfinished_in_wave or not ordered:
        return Admission((), current_wave)
    wave = (current_wave or 0) + 1
    return Admission(tuple(t.name for t in ordered[:batch_size]), wave)


@dataclass(frozen=True)
class Candidate:
    """One run that could start now: a stage attempt of a task, with the agent it would use."""

    task: str
    stage: str
    agent: str
    key: tuple[float, int, int, str]


def fill_slots(
    candidates: Iterable[Candidate],
    *,
    free_slots: int,
    agent_free: Mapping[str, int | None],
) -> tuple[list[Candidate], dict[str, int | None]]:
    """Start candidates, in the order given, while the batch and each agent have room.

    A candidate whose agent is full is passed over, not waited on: the next one may use
    another agent. `agent_free[a] is None` means the agent has no cap. Returns the chosen
    candidates and the agents' room left after them.
    """
    chosen: list[Candidate] = []
    room = dict(agent_free)
    if free_slots <= 0:
        return chosen, room
    for candidate in candidates:
        left = room.get(candidate.agent)
        if left is not None and left <= 0:
            continue
        chosen.append(candidate)
        if left is not None:
            room[candidate.agent] = left - 1
        free_slots -= 1
        if free_slots <= 0:
            break
    return chosen, room
