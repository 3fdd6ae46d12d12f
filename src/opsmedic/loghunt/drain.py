"""Drain-style log templates: a fixed-depth prefix tree of clusters, bounded, kept as JSON.

The algorithm is Drain's (He et al., ICWS 2017) as drain3 runs it: a line's tokens (split on
whitespace) lead down a tree by their count and then their first `depth - 2` tokens (a
token holding a digit, or a masked variable, takes the wildcard branch; a node holding
`max_children` branches sends new tokens to the wildcard too); at the leaf the cluster whose
template shares the most tokens with the line takes it if that share reaches `sim_th`, and
its template's differing tokens become wildcards; else the line opens a cluster. At most
`max_clusters` are kept, the least recently used evicted first. Unlike drain3, the tree
nodes an evicted cluster leaves empty are pruned, so the tree stays bounded as well (a line
with the evicted token then reaches the wildcard branch instead of an empty one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opsmedic.loghunt.keys import MARKER

WILDCARD = bytes([MARKER])  # a template's variable; the masked key's marker, shown as <*>
MAX_LINE_BYTES = 2048  # of a line, tokenized: a cluster's memory stays small
MAX_TOKENS = 128
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class DrainParams:
    """Drain's knobs, with drain3's defaults (but a bound on the clusters kept)."""

    sim_th: float = 0.4  # the share of a template's tokens a line must equal to join it
    depth: int = 4  # of the tree: root, token count, then depth - 2 first tokens
    max_children: int = 100  # branches of a node; past it, new tokens take the wildcard's
    max_clusters: int = 5000  # kept at most; the least recently used is evicted


@dataclass(slots=True)
class Cluster:
    """A template (tokens, WILDCARD for a variable), how many lines it took, and where it
    hangs in the tree (its first tokens as they were when it opened: widening keeps it put)."""

    id: int
    template: tuple[bytes, ...]
    size: int
    path: tuple[bytes, ...]  # node keys below the root: the token count, then tokens

    def text(self) -> bytes:
        return b" ".join(self.template)


@dataclass(slots=True)
class _Node:
    children: dict[bytes, _Node] = field(default_factory=dict)
    clusters: list[int] = field(default_factory=list)  # ids, in order of opening


def tokens_of(line: bytes) -> tuple[bytes, ...]:
    """A line's tokens as Drain compares them (its first MAX_LINE_BYTES, MAX_TOKENS)."""
    return tuple(line[:MAX_LINE_BYTES].split()[:MAX_TOKENS])


class Drain:
    """Clusters of lines, learned one line at a time; the same lines in the same order give
    the same clusters. `on_evict` is told of each cluster evicted."""

    def __init__(
        self,
        params: DrainParams | None = None,
        *,
        on_evict: Callable[[Cluster], None] | None = None,
    ) -> None:
        self.params = params or DrainParams()
        self.on_evict = on_evict
        self.clusters: OrderedDict[int, Cluster] = OrderedDict()  # least recently used first
        self.next_id = 1
        self.evicted = 0
        self._root = _Node()
        self._prefix = self.params.depth - 2  # tree levels below the token count's, plus one

    def add(self, line: bytes) -> Cluster:
        """Learn `line`: the cluster it joined (its template widened) or opened."""
        tokens = tokens_of(line)
        cluster = self._search(tokens)
        if cluster is None:
            if len(self.clusters) >= self.params.max_clusters:
                self._evict()
            cluster = Cluster(self.next_id, tokens, 1, ())
            self.next_id += 1
            self.place(cluster, self._path(tokens))
            return cluster
        cluster.template = tuple(
            t if t == w else WILDCARD for t, w in zip(cluster.template, tokens, strict=True)
        )
        cluster.size += 1
        self.clusters.move_to_end(cluster.id)
        return cluster

    def place(self, cluster: Cluster, path: tuple[bytes, ...]) -> None:
        """Hang `cluster` at `path` (its node keys), as the most recently used."""
        node = self._root
        for key in path:
            node = node.children.setdefault(key, _Node())
        node.clusters.append(cluster.id)
        cluster.path = path
        self.clusters[cluster.id] = cluster

    def _search(self, tokens: tuple[bytes, ...]) -> Cluster | None:
        node = self._root.children.get(b"%d" % len(tokens))
        for token in tokens[: self._prefix_len(tokens)]:
            if node is None:
                return None
            node = node.children.get(token) or node.children.get(WILDCARD)
        return None if node is None else self._best(node.clusters, tokens)

    def _prefix_len(self, tokens: Sequence[bytes]) -> int:
        return max(0, min(self._prefix, len(tokens)) - 1)

    def _best(self, ids: list[int], tokens: tuple[bytes, ...]) -> Cluster | None:
        """The cluster most like the line (ties: the one with more wildcards, then the oldest),
        if alike enough."""
        best, best_sim, best_wild = None, -1.0, -1
        for cid in ids:
            cluster = self.clusters[cid]
            same = wild = 0
            for t, w in zip(cluster.template, tokens, strict=True):
                if t == WILDCARD:
                    wild += 1
                elif t == w:
                    same += 1
            sim = same / len(tokens) if tokens else 1.0
            if sim > best_sim or (sim == best_sim and wild > best_wild):
                best, best_sim, best_wild = cluster, sim, wild
        return best if best_sim >= self.params.sim_th else None

    def _path(self, tokens: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """The node keys a new cluster of `tokens` hangs at (drain3's branch rules)."""
        path = [b"%d" % len(tokens)]
        node = self._root.children.get(path[0])
        for token in tokens[: self._prefix_len(tokens)]:
            key = token
            if node is None or token not in node.children:
                key = self._branch(node, token)
            path.append(key)
            node = None if node is None else node.children.get(key)
        return tuple(path)

    def _branch(self, node: _Node | None, token: bytes) -> bytes:
        """The key a token absent from `node` goes under: its own, or the wildcard's once the
        token is a variable or the node is full (the last free slot kept for the wildcard)."""
        if WILDCARD in token or not _DIGITS.isdisjoint(token):
            return WILDCARD
        taken = 0 if node is None else len(node.children)
        if node is not None and WILDCARD in node.children:
            return token if taken < self.params.max_children else WILDCARD
        return token if taken + 1 < self.params.max_children else WILDCARD

    def _evict(self) -> None:
        cid, cluster = self.clusters.popitem(last=False)
        nodes = [self._root]
        for key in cluster.path:
            nodes.append(nodes[-1].children[key])
        nodes[-1].clusters.remove(cid)
        for depth in range(len(cluster.path), 0, -1):  # prune the nodes left empty, leaf up
            if nodes[depth].clusters or nodes[depth].children:
                break
            del nodes[depth - 1].children[cluster.path[depth - 1]]
        self.evicted += 1
        if self.on_evict is not None:
            self.on_evict(cluster)

    def width(self, path: tuple[bytes, ...]) -> int:
        """How many branches the node at `path` has (0 when there is none)."""
        node: _Node | None = self._root
        for key in path:
            node = None if node is None else node.children.get(key)
        return 0 if node is None else len(node.children)
