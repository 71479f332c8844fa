"""Properties of the region analysis on random DAGs (hypothesis), checked against brute
force: the closure is exactly the vertices on paths between seeds, it is convex, and
`form_regions` gives convex, barrier-free, disjoint regions that contract without a cycle."""

from __future__ import annotations

import itertools

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from passes.regions import convex_closure, form_regions, is_convex, quotient_is_acyclic

MAX_VERTICES = 14


@st.composite
def dags(draw):
    """A DAG on 0..n-1 whose edges go from lower to higher numbers (so the numbering is a
    topological order, as FX graph order is), with `index` set like `graph_view` does."""
    n = draw(st.integers(2, MAX_VERTICES))
    pairs = [(u, v) for u, v in itertools.combinations(range(n), 2)]
    chosen = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    view = nx.DiGraph()
    view.add_nodes_from((v, {"index": v}) for v in range(n))
    view.add_edges_from(edge for edge, keep in zip(pairs, chosen) if keep)
    return view


def brute_closure(view: nx.DiGraph, seeds: set) -> set:
    reach = {v: nx.descendants(view, v) | {v} for v in view}
    return {
        v for v in view if any(v in reach[a] and any(b in reach[v] for b in seeds) for a in seeds)
    }


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_closure_is_the_paths_between_seeds_and_convex(data):
    view = data.draw(dags())
    seeds = data.draw(st.sets(st.sampled_from(sorted(view)), min_size=1))
    closure = convex_closure(view, seeds)
    assert closure == brute_closure(view, seeds)
    assert seeds <= closure
    assert is_convex(view, closure)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_is_convex_means_no_path_leaves_and_returns(data):
    view = data.draw(dags())
    subset = data.draw(st.sets(st.sampled_from(sorted(view)), min_size=1))
    outside = set(view) - subset
    leaves_and_returns = any(
        nx.has_path(view, a, w) and nx.has_path(view, w, b)
        for w in outside
        for a in subset
        for b in subset
    )
    assert is_convex(view, subset) == (not leaves_and_returns)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_form_regions_are_convex_clean_disjoint_and_contractible(data):
    view = data.draw(dags())
    vertices = sorted(view)
    barriers = data.draw(st.sets(st.sampled_from(vertices)))
    free = [v for v in vertices if v not in barriers]
    groups = (
        data.draw(st.lists(st.lists(st.sampled_from(free), min_size=1), max_size=3)) if free else []
    )
    # Later groups may not reuse earlier seeds: a vertex is in one region at most.
    used: set = set()
    disjoint_groups = []
    for group in groups:
        group = [v for v in group if v not in used]
        used.update(group)
        if group:
            disjoint_groups.append(group)

    regions = form_regions(view, disjoint_groups, lambda v: v in barriers)
    seen: set = set()
    for number, region in regions:
        assert set(disjoint_groups[number]).intersection(region)
        assert is_convex(view, region)
        assert not barriers.intersection(region)
        assert not seen.intersection(region)
        assert region == sorted(region)
        seen.update(region)
    for group in disjoint_groups:
        assert set(group) <= seen, "every seed is in some region"
    if len(disjoint_groups) <= 1:
        assert quotient_is_acyclic(view, [region for _, region in regions])


def test_cut_at_a_barrier():
    # 0 -> 1 -> 2 -> 3 -> 4 with a barrier at 2: seeds 0, 1, 3, 4 give two runs.
    view = nx.DiGraph()
    view.add_nodes_from((v, {"index": v}) for v in range(5))
    view.add_edges_from([(0, 1), (1, 2), (2, 3), (3, 4)])
    assert form_regions(view, [[0, 1, 3, 4]], lambda v: v == 2) == [(0, [0, 1]), (0, [3, 4])]


def test_contracting_two_interleaved_regions_makes_a_cycle():
    # a1 -> b1 and b2 -> a2: each region alone is convex, together they form a cycle.
    view = nx.DiGraph()
    view.add_nodes_from((v, {"index": i}) for i, v in enumerate(["a1", "b2", "b1", "a2"]))
    view.add_edges_from([("a1", "b1"), ("b2", "a2")])
    assert is_convex(view, ["a1", "a2"]) and is_convex(view, ["b1", "b2"])
    assert not quotient_is_acyclic(view, [["a1", "a2"], ["b1", "b2"]])
