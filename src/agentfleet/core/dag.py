"""Dependency graphs: order, cycles, critical paths. Used by models (validation) and the core."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    """A dependency cycle; `cycle` lists it closed, first node repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle in `graph` (node -> the nodes it depends on), or None.

    Iterative, so a chain of thousands of tasks does not hit the recursion limit. Nodes are
    visited in the mapping's order, so the same graph always names the same cycle.
    """
    state: dict[str, int] = {}
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(graph.get(root, ()))]
        state[root] = 1
        while iters:
            dep = next(iters[-1], None)
            if dep is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            mark = state.get(dep)
            if mark == 1:
                return [*path[path.index(dep) :], dep]
            if mark is None:
                state[dep] = 1
                path.append(dep)
                iters.append(iter(graph.get(dep, ())))
    return None


def topological_order(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Dependencies before dependents; among peers, the mapping's order. Raises CycleError."""
    deps = {node: [d for d in ds if d in graph] for node, ds in graph.items()}
    dependents: dict[str, list[str]] = {node: [] for node in deps}
    remaining = {node: len(ds) for node, ds in deps.items()}
    for node, ds in deps.items():
        for dep in ds:
            dependents[dep].append(node)
    index = {node: i for i, node in enumerate(deps)}

    ready = [(index[n], n) for n, count in remaining.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in dependents[node]:
            remaining[child] -= 1
            if remaining[child] == 0:
                heapq.heappush(ready, (index[child], child))
    if len(order) != len(deps):
        cycle = find_cycle(deps)
        assert cycle is not None
        raise CycleError(cycle)
    return order


def critical_path_lengths(
    graph: Mapping[str, Iterable[str]],
    weights: Mapping[str, float],
    order: list[str] | None = None,
) -> dict[str, float]:
    """For each node, the heaviest chain from it through its dependents, itself included.

    This is the work that must still happen in sequence once the node starts: the list
    scheduler runs the node with the longest such chain first.
    """
    graph = {node: list(deps) for node, deps in graph.items()}
    if order is None:
        order = topological_order(graph)
    dependents: dict[str, list[str]] = {node: [] for node in order}
    for node in order:
        for dep in graph[node]:
            if dep in dependents:
                dependents[dep].append(node)
    length: dict[str, float] = {}
    for node in reversed(order):
        tail = max((length[child] for child in dependents[node]), default=0.0)
        length[node] = weights.get(node, 1.0) + tail
    return length
