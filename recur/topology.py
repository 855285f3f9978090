"""Topology: any networkx graph as the wiring of a recur network.

Convention used everywhere in recur: ``W[i, j]`` is the weight from unit ``j`` onto unit ``i``
(``W[post, pre]``). A networkx edge ``(u, v)`` means ``u -> v``, so the mask is the transpose of
networkx's adjacency matrix.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import networkx as nx
import numpy as np
import scipy.sparse as sp

__all__ = ["Topology"]


class Topology:
    """The wiring of a network: node order, connection mask and unit roles.

    Parameters
    ----------
    G : networkx.Graph, DiGraph, MultiGraph or MultiDiGraph
        Any graph with hashable node labels. Directed edge ``u -> v`` lets unit ``v`` receive
        from unit ``u``; an undirected edge means both directions exist. Self-loops are kept;
        isolated nodes become units with no recurrent input.
    nodelist : sequence of hashable, optional
        Order of the units; defaults to ``list(G)``. Must name every node exactly once.
    roles : mapping of str to iterable of node labels, optional
        Unit roles such as ``{"input": [...], "output": [...]}``. Roles passed here are added
        to those read from node attributes.

    Attributes
    ----------
    n_units : int
    nodelist : tuple
        Node label of each unit, in unit order.
    mask : scipy.sparse.csr_array of bool, shape (n_units, n_units)
        ``mask[post, pre]`` is True where an edge ``pre -> post`` exists.
    roles : dict of str to ndarray of int
        Sorted unit indices per role. Read from a node attribute ``role`` (a string, or a
        collection of strings for several roles) and from ``roles``.
    pools : dict of hashable to ndarray of int
        Unit indices per pool, read from a node attribute ``pool`` (synfire chains, modules),
        in sorted pool order.

    Notes
    -----
    The mask is ``A.T`` where ``A = nx.to_scipy_sparse_array(G, nodelist)``. A Topology never
    holds trained weights: those live in a network's ``params``.

    Examples
    --------
    >>> import networkx as nx
    >>> topo = Topology(nx.DiGraph([("a", "b")]))
    >>> topo.mask.toarray().astype(int)   # row = post ("b"), column = pre ("a")
    array([[0, 0],
           [1, 0]])
    """

    def __init__(self, G, nodelist=None, roles=None):
        if not isinstance(G, nx.Graph):
            raise TypeError(f"G must be a networkx graph, got {type(G).__name__}")
        if G.number_of_nodes() == 0:
            raise ValueError("G is empty: a topology needs at least one node")
        if nodelist is None:
            nodelist = list(G)
        else:
            nodelist = list(nodelist)
            if len(nodelist) != G.number_of_nodes() or set(nodelist) != set(G):
                raise ValueError("nodelist must name every node of G exactly once")
            if len(set(nodelist)) != len(nodelist):
                raise ValueError("nodelist contains repeated nodes")
        self.graph = G
        self.nodelist = tuple(nodelist)
        self._index = {node: i for i, node in enumerate(self.nodelist)}
        A = nx.to_scipy_sparse_array(G, nodelist=self.nodelist, weight=None, format="csr")
        mask = sp.csr_array(A.T.astype(bool))
        mask.sort_indices()
        self._mask = mask
        self.roles = self._read_roles(G, roles)
        self.pools = self._read_pools(G)

    # -- construction helpers -------------------------------------------------------------
    def _indices(self, nodes: Iterable[Hashable], what: str) -> np.ndarray:
        idx = []
        for node in nodes:
            if node not in self._index:
                raise ValueError(f"{what} names node {node!r}, which is not in the graph")
            idx.append(self._index[node])
        return np.array(sorted(set(idx)), dtype=np.intp)

    def _read_roles(self, G, roles) -> dict[str, np.ndarray]:
        found: dict[str, set] = {}
        for node, role in G.nodes(data="role"):
            if role is None:
                continue
            names = [role] if isinstance(role, str) else list(role)
            for name in names:
                found.setdefault(str(name), set()).add(node)
        if roles is not None:
            if not isinstance(roles, Mapping):
                raise TypeError("roles must be a mapping of role name to node labels")
            for name, nodes in roles.items():
                if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
                    raise TypeError(f"roles[{name!r}] must be an iterable of node labels")
                found.setdefault(str(name), set()).update(nodes)
        return {name: self._indices(nodes, f"roles[{name!r}]") for name, nodes in sorted(found.items())}

    def _read_pools(self, G) -> dict[Hashable, np.ndarray]:
        pools: dict[Hashable, list] = {}
        for node, pool in G.nodes(data="pool"):
            if pool is not None:
                pools.setdefault(pool, []).append(self._index[node])
        try:
            order = sorted(pools)
        except TypeError:
            order = list(pools)
        return {p: np.array(sorted(pools[p]), dtype=np.intp) for p in order}

    # -- public API -----------------------------------------------------------------------
    @classmethod
    def load(cls, name: str, rng=None, **overrides) -> "Topology":
        """Build a named recipe from the topology catalogue.

        Parameters
        ----------
        name : str
            A catalogue name (``recur topologies`` lists them).
        rng : None, int or numpy.random.Generator
            Source of the generator's seed; the same ``rng`` gives the same graph.
        **overrides
            Recipe parameters to change, such as ``n=200``.
        """
        from . import catalogue  # the catalogue reads files; keep it out of import time

        return cls(catalogue.build_graph(name, rng=rng, **overrides))

    @property
    def n_units(self) -> int:
        return len(self.nodelist)

    @property
    def n_edges(self) -> int:
        """Number of directed connections (an undirected edge counts twice)."""
        return int(self._mask.nnz)

    @property
    def mask(self) -> sp.csr_array:
        return self._mask.copy()

    @property
    def density(self) -> float:
        return self.n_edges / float(self.n_units) ** 2

    def index(self, node) -> int:
        """Unit index of a node label."""
        try:
            return self._index[node]
        except KeyError:
            raise ValueError(f"node {node!r} is not in the graph") from None

    def adjacency(self, weight=None) -> sp.csr_array:
        """Connection matrix in ``[post, pre]`` orientation.

        Parameters
        ----------
        weight : str or None
            Edge attribute to read as the entry; ``None`` gives 1 for every edge. Parallel edges
            of a multigraph are summed.

        Returns
        -------
        scipy.sparse.csr_array of float64, shape (n_units, n_units)
        """
        if weight is not None and not isinstance(weight, str):
            raise TypeError(f"weight must be an edge attribute name or None, got {weight!r}")
        A = nx.to_scipy_sparse_array(self.graph, nodelist=self.nodelist, weight=weight,
                                     dtype=np.float64, format="csr")
        out = sp.csr_array(A.T)
        out.sort_indices()
        return out

    def in_degree(self) -> np.ndarray:
        """Number of presynaptic units of each unit."""
        return np.diff(self._mask.indptr)

    def __repr__(self) -> str:
        kind = "directed" if self.graph.is_directed() else "undirected"
        roles = ", ".join(f"{k}={len(v)}" for k, v in self.roles.items())
        extra = f", roles: {roles}" if roles else ""
        return f"Topology({self.n_units} units, {self.n_edges} connections, {kind}{extra})"
