"""Generators over structures drawn at random: graphs, trees, grids (combinatorics).

Each `params` draws until the instance is non-trivial (a path of four or more vertices, a path
count outside the filter's small integers), so every instance it returns is a real puzzle.
"""

from __future__ import annotations

import random
from collections import deque

from puzzles.generators.base import Generator

_SMALL = set(range(-10, 11)) | {100, 1000}


def _distances(n: int, edges: list[list[int]], s: int) -> dict[int, int]:
    adj: dict[int, list[int]] = {v: [] for v in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    dist, todo = {s: 0}, deque([s])
    while todo:
        v = todo.popleft()
        for w in adj[v]:
            if w not in dist:
                dist[w] = dist[v] + 1
                todo.append(w)
    return dist


def _graph(rng: random.Random) -> dict:
    while True:
        n = rng.randint(8, 18)
        pairs = [[a, b] for a in range(n) for b in range(a + 1, n)]
        edges = rng.sample(pairs, rng.randint(n, 2 * n))
        s = rng.randrange(n)
        far = [v for v, d in _distances(n, edges, s).items() if d >= 3]
        if far:
            return {"n": n, "edges": edges, "s": s, "t": rng.choice(far)}


SHORTEST_PATH = Generator(
    "graphs/shortest_path", "path: list[int]",
    "Find a shortest path from s to t in the undirected graph on vertices 0..n-1, as the list "
    "of vertices it visits.",
    """
    adj = {v: set() for v in range(n)}
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    dist, todo = {s: 0}, [s]
    for v in todo:
        for w in adj[v]:
            if w not in dist:
                dist[w] = dist[v] + 1
                todo.append(w)
    return (t in dist and len(path) == dist[t] + 1 and path[0] == s and path[-1] == t
            and all(path[i + 1] in adj.get(path[i], ()) for i in range(len(path) - 1)))
    """,
    """
    adj = {v: [] for v in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    prev, todo = {s: None}, [s]
    for v in todo:
        for w in adj[v]:
            if w not in prev:
                prev[w] = v
                todo.append(w)
    path = [t]
    while path[-1] != s:
        path.append(prev[path[-1]])
    return path[::-1]
    """,
    _graph, difficulty="medium", tags=("bfs", "shortest path"))


def _tree(rng: random.Random) -> dict:
    while True:
        n = rng.randint(10, 40)
        parent = [-1] + [rng.randrange(i) for i in range(1, n)]
        u, v = rng.sample(range(n), 2)
        edges = [[i, parent[i]] for i in range(1, n)]
        if _distances(n, edges, u)[v] >= 3:
            return {"parent": parent, "u": u, "v": v}


TREE_PATH = Generator(
    "trees/path_between", "path: list[int]",
    "Find the path from node u to node v in the rooted tree given as a parent list (the root "
    "has -1), as the list of nodes it visits.",
    """
    n = len(parent)
    if len(set(path)) != len(path) or not path or path[0] != u or path[-1] != v:
        return False
    if not all(0 <= x < n for x in path):
        return False
    return all(parent[a] == b or parent[b] == a for a, b in zip(path, path[1:]))
    """,
    """
    def up(x):
        out = [x]
        while parent[out[-1]] != -1:
            out.append(parent[out[-1]])
        return out
    a, b = up(u), up(v)
    common = set(a) & set(b)
    top = next(x for x in a if x in common)
    return a[:a.index(top) + 1] + b[:b.index(top)][::-1]
    """,
    _tree, tags=("trees", "lowest common ancestor"))


def _grid(rng: random.Random) -> dict:
    while True:
        w, h = rng.randint(3, 9), rng.randint(3, 9)
        blocked = [[rng.randint(0, w), rng.randint(0, h)] for _ in range(rng.randint(1, 4))]
        blocked = [b for b in blocked if b not in ([0, 0], [w, h])]
        ways = [[0] * (h + 1) for _ in range(w + 1)]
        for x in range(w + 1):
            for y in range(h + 1):
                if [x, y] in blocked:
                    continue
                ways[x][y] = 1 if x == y == 0 else (
                    (ways[x - 1][y] if x else 0) + (ways[x][y - 1] if y else 0))
        if ways[w][h] not in _SMALL:
            return {"w": w, "h": h, "blocked": blocked}


GRID_PATHS = Generator(
    "combinatorics/grid_paths_avoiding", "n: int",
    "Count the paths from [0, 0] to [w, h] taking unit steps in +x or +y that never visit a "
    "point in blocked.",
    """
    ways = {}
    for x in range(w + 1):
        for y in range(h + 1):
            if [x, y] in blocked:
                ways[x, y] = 0
            elif x == y == 0:
                ways[x, y] = 1
            else:
                ways[x, y] = ways.get((x - 1, y), 0) + ways.get((x, y - 1), 0)
    return n == ways[w, h]
    """,
    """
    from math import comb
    points = sorted({tuple(b) for b in blocked}) + [(w, h)]
    # Paths to each point avoiding the blocked points before it (inclusion-exclusion).
    first = []
    for i, (x, y) in enumerate(points):
        total = comb(x + y, x)
        for j in range(i):
            px, py = points[j]
            if px <= x and py <= y:
                total -= first[j] * comb(x - px + y - py, x - px)
        first.append(total)
    return first[-1]
    """,
    _grid, difficulty="medium", tags=("lattice paths", "inclusion-exclusion"))

GENERATORS = (SHORTEST_PATH, TREE_PATH, GRID_PATHS)
