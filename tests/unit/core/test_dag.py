"""Dependency graphs: cycles, topological order, critical paths.

A graph maps each node to the nodes it depends on.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.dag import (
    CycleError,
    critical_path_lengths,
    find_cycle,
    topological_order,
)

CHAIN_LENGTH = 5_000


def chain(n: int) -> dict[str, list[str]]:
    """n0 depends on n1, which depends on n2, ... : a depth-first walk goes n deep."""
    return {f"n{i}": [f"n{i + 1}"] if i + 1 < n else [] for i in range(n)}


def assert_is_a_cycle_of(cycle: list[str], graph: dict[str, list[str]]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"
    for node, dep in itertools.pairwise(cycle):
        assert dep in graph[node], f"{node} -> {dep} is not an edge"


# find_cycle


def test_find_cycle_of_an_empty_graph_is_none():
    assert find_cycle({}) is None


def test_find_cycle_of_an_acyclic_graph_is_none():
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"], "d": ["c"]}) is None


def test_find_cycle_names_a_self_loop():
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_find_cycle_names_a_two_node_cycle_closed():
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_find_cycle_names_only_the_cycle_not_the_path_to_it():
    graph = {"entry": ["x"], "x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_find_cycle_follows_the_mapping_order_so_the_answer_is_deterministic():
    graph = {"b": ["a"], "a": ["b"]}
    assert find_cycle(graph) == ["b", "a", "b"]
    assert all(find_cycle(graph) == ["b", "a", "b"] for _ in range(10))


def test_find_cycle_picks_the_first_cycle_reached_in_dependency_order():
    graph = {"a": ["b", "c"], "b": ["a"], "c": ["a"]}
    assert find_cycle(graph) == ["a", "b", "a"]


def test_find_cycle_treats_unknown_dependencies_as_leaves():
    assert find_cycle({"a": ["outside"], "b": ["a", "elsewhere"]}) is None


def test_find_cycle_accepts_any_iterable_of_dependencies():
    assert find_cycle({"a": ("b",), "b": {"c"}, "c": iter(["a"])}) == ["a", "b", "c", "a"]


def test_find_cycle_is_iterative_on_a_long_chain():
    assert find_cycle(chain(CHAIN_LENGTH)) is None


def test_find_cycle_finds_a_cycle_closing_a_long_chain():
    graph = chain(CHAIN_LENGTH)
    graph[f"n{CHAIN_LENGTH - 1}"] = ["n0"]
    cycle = find_cycle(graph)
    assert cycle is not None
    assert len(cycle) == CHAIN_LENGTH + 1
    assert cycle[0] == cycle[-1] == "n0"


# topological_order


def test_topological_order_puts_dependencies_before_dependents():
    graph = {"deploy": ["test", "docs"], "test": ["build"], "docs": [], "build": []}
    order = topological_order(graph)
    assert order == ["docs", "build", "test", "deploy"]


def test_topological_order_keeps_mapping_order_among_peers():
    assert topological_order({"c": [], "a": [], "b": []}) == ["c", "a", "b"]
    graph = {"z": ["root"], "y": ["root"], "root": [], "x": ["root"]}
    assert topological_order(graph) == ["root", "z", "y", "x"]


def test_topological_order_releases_an_earlier_node_as_soon_as_it_is_ready():
    # "a" is listed first; once "late" is done, "a" goes before "b", which was ready earlier.
    graph = {"a": ["late"], "b": [], "late": []}
    assert topological_order(graph) == ["b", "late", "a"]


def test_topological_order_ignores_dependencies_outside_the_graph():
    assert topological_order({"a": ["elsewhere"], "b": ["a"]}) == ["a", "b"]


def test_topological_order_tolerates_a_dependency_listed_twice():
    assert topological_order({"b": ["a", "a"], "a": []}) == ["a", "b"]


def test_topological_order_raises_cycle_error_naming_the_cycle():
    with pytest.raises(CycleError) as info:
        topological_order({"ok": [], "a": ["ok", "b"], "b": ["a"]})
    assert info.value.cycle == ["a", "b", "a"]
    assert str(info.value) == "dependency cycle: a -> b -> a"
    assert isinstance(info.value, ValueError)


def test_topological_order_of_a_long_chain_is_reversed():
    order = topological_order(chain(CHAIN_LENGTH))
    assert order == [f"n{i}" for i in reversed(range(CHAIN_LENGTH))]


# critical_path_lengths


def test_critical_path_lengths_on_a_hand_computed_diamond():
    #      a(2)
    #     /    \
    #   b(3)   c(1)      b and c depend on a; d depends on b and c
    #     \    /
    #      d(4)
    graph = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    weights = {"a": 2.0, "b": 3.0, "c": 1.0, "d": 4.0}
    assert critical_path_lengths(graph, weights) == {"d": 4.0, "b": 7.0, "c": 5.0, "a": 9.0}


def test_critical_path_of_independent_nodes_is_their_weight():
    assert critical_path_lengths({"a": [], "b": []}, {"a": 5.0, "b": 2.5}) == {"a": 5.0, "b": 2.5}


def test_critical_path_weight_defaults_to_one():
    assert critical_path_lengths({"a": [], "b": ["a"], "c": ["b"]}, {}) == {
        "a": 3.0,
        "b": 2.0,
        "c": 1.0,
    }


def test_critical_path_ignores_dependencies_outside_the_graph():
    assert critical_path_lengths({"a": ["gone"]}, {"a": 2.0}) == {"a": 2.0}


def test_critical_path_raises_cycle_error_on_a_cycle():
    with pytest.raises(CycleError):
        critical_path_lengths({"a": ["b"], "b": ["a"]}, {})


def test_critical_path_accepts_one_shot_iterables_of_dependencies():
    # The signature takes Iterable[str]; the graph is read twice (order, then dependents),
    # so a generator is exhausted by the first pass and "a" loses its dependent "b".
    graph = {"a": iter([]), "b": iter(["a"])}
    assert critical_path_lengths(graph, {}) == {"a": 2.0, "b": 1.0}


# Properties over random graphs


@st.composite
def dags(draw) -> tuple[dict[str, list[str]], dict[str, float]]:
    """A random DAG: node j may depend only on nodes i < j; listed in a shuffled order."""
    n = draw(st.integers(min_value=0, max_value=25))
    names = [f"t{i}" for i in range(n)]
    edges = draw(
        st.lists(
            st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0))),
            max_size=3 * n,
        )
    )
    graph: dict[str, list[str]] = {name: [] for name in names}
    for i, j in edges:
        low, high = min(i, j), max(i, j)
        if low != high and names[low] not in graph[names[high]]:
            graph[names[high]].append(names[low])
    order = draw(st.permutations(names))
    costs = draw(st.lists(st.integers(1, 10), min_size=n, max_size=n))
    weights = {name: float(cost) for name, cost in zip(names, costs, strict=True)}
    return {name: graph[name] for name in order}, weights


@st.composite
def graphs(draw) -> dict[str, list[str]]:
    """A random directed graph, cycles and self-loops allowed."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"t{i}" for i in range(n)]
    return {name: draw(st.lists(st.sampled_from(names), unique=True)) for name in names}


@given(dags())
def test_property_topological_order_of_a_dag_is_a_valid_order(dag):
    graph, _ = dag
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    position = {node: i for i, node in enumerate(order)}
    for node, deps in graph.items():
        for dep in deps:
            assert position[dep] < position[node]


@given(dags())
def test_property_topological_order_is_deterministic(dag):
    graph, _ = dag
    assert topological_order(graph) == topological_order(dict(graph))


@given(dags())
def test_property_a_dag_has_no_cycle(dag):
    graph, _ = dag
    assert find_cycle(graph) is None


@given(dags())
def test_property_critical_path_covers_each_dependent(dag):
    graph, weights = dag
    length = critical_path_lengths(graph, weights)
    assert set(length) == set(graph)
    for node, deps in graph.items():
        assert length[node] >= weights[node]
        for dep in deps:
            assert length[dep] >= weights[dep] + length[node]


@given(dags())
def test_property_critical_path_is_weight_plus_longest_dependent_path(dag):
    graph, weights = dag
    length = critical_path_lengths(graph, weights)
    for node in graph:
        dependents = [n for n, deps in graph.items() if node in deps]
        assert length[node] == weights[node] + max((length[d] for d in dependents), default=0.0)


@given(graphs())
def test_property_find_cycle_names_a_real_cycle_or_the_graph_can_be_ordered(graph):
    cycle = find_cycle(graph)
    if cycle is None:
        assert sorted(topological_order(graph)) == sorted(graph)
    else:
        assert_is_a_cycle_of(cycle, graph)
        with pytest.raises(CycleError) as info:
            topological_order(graph)
        assert_is_a_cycle_of(info.value.cycle, graph)


@given(dags(), st.data())
def test_property_a_back_edge_in_a_dag_is_found_as_a_cycle(dag, data):
    graph, _ = dag
    edges = [(node, dep) for node, deps in graph.items() for dep in deps]
    if not edges:
        return
    node, dep = data.draw(st.sampled_from(edges))
    graph = {n: list(deps) for n, deps in graph.items()}
    graph[dep] = [*graph[dep], node]
    cycle = find_cycle(graph)
    assert cycle is not None
    assert_is_a_cycle_of(cycle, graph)
