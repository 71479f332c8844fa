"""Convex regions of an FX graph, found on a networkx view of it (used by `split-dynamic-m`).

The view is a `networkx.DiGraph` whose vertices are the graph's nodes and whose edge
``u -> v`` says that ``v`` reads ``u``; each vertex carries ``index``, its position in the
graph (a topological order, since FX defines a value before its uses).

Definitions, for a set ``S`` of vertices:

* ``closure(S) = S ∪ {v : s1 ->* v ->* s2 for some s1, s2 in S}``: the vertices on a path
  between two members of ``S``.  It is the smallest convex set holding ``S``;
* ``S`` is *convex* when ``closure(S) == S``: no path leaves ``S`` and comes back.  A convex
  set can be replaced by one node (reading what ``S`` reads from outside, producing what the
  outside reads from ``S``) without making a cycle;
* a *barrier* is a vertex that may not be inside a region (an input, a constant, an op with
  side effects, a node already in another region).

Every vertex of ``closure(S)`` has an index between ``min(S)`` and ``max(S)``, so both
searches below stop at those bounds: the cost is proportional to the span of ``S``, not to
the graph.

`form_regions` turns groups of seeds (the fused ops of one M symbol, of one layer, or one op
each) into convex, barrier-free, pairwise disjoint regions: a group whose closure is clean is
one region; otherwise it is cut, in graph order, into the longest runs whose closures are
clean.  `quotient_is_acyclic` checks that all regions together can be contracted at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

import networkx as nx
import torch.fx

INDEX = "index"


def graph_view(graph: torch.fx.Graph) -> nx.DiGraph:
    """The data-flow view of `graph` (see the module docstring)."""
    view = nx.DiGraph()
    for index, node in enumerate(graph.nodes):
        view.add_node(node, index=index)
    for node in graph.nodes:
        for source in node.all_input_nodes:
            view.add_edge(source, node)
    return view


def _reach(view: nx.DiGraph, seeds: Iterable[Hashable], forward: bool, bound: int) -> set:
    """Vertices reachable from `seeds` (seeds included) going forward (successors, indices up
    to `bound`) or backward (predecessors, indices down to `bound`)."""
    neighbours = view.successors if forward else view.predecessors
    index = view.nodes
    seen = set(seeds)
    stack = list(seen)
    while stack:
        vertex = stack.pop()
        for other in neighbours(vertex):
            if other in seen:
                continue
            position = index[other][INDEX]
            if (position > bound) if forward else (position < bound):
                continue
            seen.add(other)
            stack.append(other)
    return seen


def convex_closure(view: nx.DiGraph, seeds: Iterable[Hashable]) -> set:
    """``closure(seeds)``: the seeds and every vertex on a path between two of them."""
    seeds = set(seeds)
    if len(seeds) <= 1:
        return seeds
    positions = [view.nodes[s][INDEX] for s in seeds]
    after_first = _reach(view, seeds, forward=True, bound=max(positions))
    before_last = _reach(view, seeds, forward=False, bound=min(positions))
    return after_first & before_last


def is_convex(view: nx.DiGraph, vertices: Iterable[Hashable]) -> bool:
    """No path leaves `vertices` and comes back."""
    vertices = set(vertices)
    return convex_closure(view, vertices) == vertices


def form_regions(
    view: nx.DiGraph,
    groups: Sequence[Sequence[Hashable]],
    is_barrier: Callable[[Hashable], bool],
) -> list[tuple[int, list]]:
    """Convex, barrier-free, disjoint regions covering every seed of `groups` that is not a
    barrier itself, as ``(number of the group, region in graph order)`` pairs.

    Groups are handled in order; vertices taken by an earlier region are barriers for later
    ones."""
    taken: set = set()
    position = view.nodes

    def blocked(vertices: set) -> bool:
        return any(v in taken or is_barrier(v) for v in vertices)

    regions: list[tuple[int, list]] = []
    for number, group in enumerate(groups):
        seeds = sorted(set(group), key=lambda v: position[v][INDEX])
        if not seeds:
            continue
        whole = convex_closure(view, seeds)
        if not blocked(whole):
            chunks = [whole]
        else:
            chunks = _cut(view, seeds, blocked)
        for chunk in chunks:
            taken |= chunk
            regions.append((number, sorted(chunk, key=lambda v: position[v][INDEX])))
    return regions


def _cut(view: nx.DiGraph, seeds: list, blocked: Callable[[set], bool]) -> list[set]:
    """Greedy runs of consecutive seeds whose closures are clean (a lone seed always is,
    unless it is blocked itself, then it is dropped)."""
    chunks: list[set] = []
    current: list = []
    current_closure: set = set()
    for seed in seeds:
        if blocked({seed}):
            continue
        candidate = convex_closure(view, [*current, seed])
        if current and blocked(candidate):
            chunks.append(current_closure)
            current, current_closure = [seed], {seed}
        else:
            current, current_closure = [*current, seed], candidate
    if current:
        chunks.append(current_closure)
    return chunks


def quotient_is_acyclic(view: nx.DiGraph, regions: Sequence[Iterable[Hashable]]) -> bool:
    """Contracting every region to one vertex leaves a DAG."""
    owner = {}
    for number, region in enumerate(regions):
        for vertex in region:
            owner[vertex] = ("region", number)
    quotient = nx.DiGraph()
    for u, v in view.edges:
        a, b = owner.get(u, u), owner.get(v, v)
        if a != b:
            quotient.add_edge(a, b)
    return nx.is_directed_acyclic_graph(quotient)


__all__ = [
    "convex_closure",
    "form_regions",
    "graph_view",
    "is_convex",
    "quotient_is_acyclic",
]
