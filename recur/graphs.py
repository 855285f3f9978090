"""Graph generators for recurrent and reservoir networks that networkx lacks.

Every generator returns a networkx graph with integer nodes ``0 .. N-1``, added in that order,
so ``Topology(G)`` numbers units the same way as the nodes. A directed edge ``u -> v`` means
unit ``u`` drives unit ``v`` (``W[v, u]`` in recur's ``W[post, pre]`` convention); an
undirected edge means both directions exist.

Random generators take ``seed=None`` (None, an int or a ``numpy.random.Generator``) and draw
only from ``np.random.default_rng(seed)``, never from global random state. Edges are sampled
block by block with numpy, so the cost grows with the number of nodes and edges, not with the
number of node pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import networkx as nx
import numpy as np

from .validation import check_in_interval, check_positive

__all__ = [
    "bipartite_graph",
    "directed_scale_free_graph",
    "layered_graph",
    "modular_graph",
    "ring_graph",
    "synfire_chain_graph",
]


# -- argument checks and sampling helpers ----------------------------------------------------
def _as_rng(seed) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}"
        ) from exc


def _count(value, name: str) -> int:
    return int(check_positive(value, name, integer=True))


def _probability(value, name: str) -> float:
    return float(check_in_interval(value, name, 0.0, 1.0, low_open=False))


def _flag(value, name: str) -> bool:
    # A truthy string such as "false" from a config file must not silently mean True.
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _bernoulli_indices(rng: np.random.Generator, n_trials: int, p: float) -> np.ndarray:
    """Sorted indices in ``range(n_trials)`` of independent Bernoulli(p) successes.

    The gaps between successes are geometric, so drawing the gaps costs O(successes) time and
    memory instead of O(n_trials) for a boolean mask (Batagelj & Brandes, Phys. Rev. E 71:036113,
    2005). That keeps a sparse 10,000-node graph cheap even though it has 10^8 node pairs.
    """
    if p == 0.0 or n_trials == 0:
        return np.empty(0, dtype=np.int64)
    if p == 1.0:
        return np.arange(n_trials, dtype=np.int64)
    chunks = []
    last = -1
    while last < n_trials - 1:
        expected = (n_trials - 1 - last) * p
        # A few standard deviations of headroom: one draw almost always reaches the end.
        size = int(expected + 5.0 * math.sqrt(expected) + 16)
        positions = last + np.cumsum(rng.geometric(p, size=size))
        chunks.append(positions)
        last = int(positions[-1])
    indices = np.concatenate(chunks)
    return indices[indices < n_trials]


def _block_edges(rng, row_start: int, n_rows: int, col_start: int, n_cols: int, p: float):
    """Edges ``u -> v`` between two contiguous node ranges, each present with probability p."""
    flat = _bernoulli_indices(rng, n_rows * n_cols, p)
    return row_start + flat // n_cols, col_start + flat % n_cols


def _add_edges(G: nx.Graph, u: np.ndarray, v: np.ndarray) -> None:
    # Python ints, so that node keys in the adjacency dicts are not numpy scalars.
    G.add_edges_from(zip(u.tolist(), v.tolist()))


# -- generators ------------------------------------------------------------------------------
def layered_graph(sizes, p=1.0, directed=True, seed=None) -> nx.Graph:
    """Feed-forward layers: each unit of layer ``k`` connects to units of layer ``k + 1``.

    Parameters
    ----------
    sizes : sequence of int
        Number of units in each layer, from input to output; at least two layers, each with
        at least one unit.
    p : float in [0, 1], default 1.0
        Probability of each edge between successive layers, drawn independently; 1 connects
        successive layers completely.
    directed : bool, default True
        If True, return a ``DiGraph`` whose edges point from layer ``k`` to layer ``k + 1``;
        if False, a ``Graph`` whose edges carry signals both ways (as in an energy network).
    seed : None, int or numpy.random.Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    networkx.DiGraph or networkx.Graph
        Nodes ``0 .. sum(sizes) - 1``, layer by layer. Node attributes: ``layer=k`` and
        ``pool=k``, and ``role`` = ``"input"`` for the first layer, ``"output"`` for the last
        and ``"hidden"`` for the others. Edge ``u -> v`` means unit ``u`` drives unit ``v``.

    Notes
    -----
    There are no edges within a layer and none that skip a layer. With ``p = 1`` the graph is
    deterministic and has ``sum(sizes[k] * sizes[k + 1])`` edges.

    References
    ----------
    .. [1] Rumelhart, Hinton & Williams, "Learning representations by back-propagating
       errors", Nature 323:533-536 (1986).

    Examples
    --------
    >>> G = layered_graph([2, 3, 1])
    >>> G.number_of_edges(), G.nodes[0]["role"], G.nodes[5]["role"]
    (9, 'input', 'output')
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
        raise TypeError(f"sizes must be a sequence of layer sizes, got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least two layers, got {list(sizes)!r}")
    sizes = [_count(size, f"sizes[{k}]") for k, size in enumerate(sizes)]
    p = _probability(p, "p")
    directed = _flag(directed, "directed")
    rng = _as_rng(seed)

    G = nx.DiGraph() if directed else nx.Graph()
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    last = len(sizes) - 1
    for k in range(len(sizes)):
        role = "input" if k == 0 else "output" if k == last else "hidden"
        G.add_nodes_from(range(starts[k], starts[k + 1]), layer=k, pool=k, role=role)
    for k in range(last):
        _add_edges(G, *_block_edges(rng, starts[k], sizes[k], starts[k + 1], sizes[k + 1], p))
    return G


def synfire_chain_graph(n_pools, pool_size, p_forward, p_recurrent=0.0, seed=None) -> nx.DiGraph:
    """A synfire chain: pools of units, each pool driving the next.

    Parameters
    ----------
    n_pools : int
        Number of pools in the chain (at least 1).
    pool_size : int
        Number of units in each pool (at least 1).
    p_forward : float in [0, 1]
        Probability of each edge from a unit of pool ``k`` to a unit of pool ``k + 1``.
    p_recurrent : float in [0, 1], default 0.0
        Probability of each edge between two distinct units of the same pool (both directions
        drawn independently; no self-loops).
    seed : None, int or numpy.random.Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    networkx.DiGraph
        Nodes ``0 .. n_pools * pool_size - 1``; pool ``k`` holds nodes
        ``k * pool_size .. (k + 1) * pool_size - 1`` and each node has the attribute
        ``pool=k``. Edge ``u -> v`` means unit ``u`` drives unit ``v``.

    Notes
    -----
    The chain is open: the last pool drives nothing and the first is driven by nothing but
    itself, so a volley injected into pool 0 can travel the length of the chain. Edges go only
    from pool ``k`` to pool ``k + 1`` and, when ``p_recurrent > 0``, within a pool. Diesmann
    et al. [2]_ use 10 pools of 100 units with ``p_forward = 1``.

    References
    ----------
    .. [1] Abeles, "Corticonics: Neural Circuits of the Cerebral Cortex", Cambridge
       University Press (1991).
    .. [2] Diesmann, Gewaltig & Aertsen, "Stable propagation of synchronous spiking in
       cortical neural networks", Nature 402:529-533 (1999).

    Examples
    --------
    >>> G = synfire_chain_graph(3, 2, p_forward=1.0)
    >>> sorted(G.edges())
    [(0, 2), (0, 3), (1, 2), (1, 3), (2, 4), (2, 5), (3, 4), (3, 5)]
    """
    n_pools = _count(n_pools, "n_pools")
    pool_size = _count(pool_size, "pool_size")
    p_forward = _probability(p_forward, "p_forward")
    p_recurrent = _probability(p_recurrent, "p_recurrent")
    rng = _as_rng(seed)

    G = nx.DiGraph()
    for k in range(n_pools):
        G.add_nodes_from(range(k * pool_size, (k + 1) * pool_size), pool=k)
    for k in range(n_pools):
        start = k * pool_size
        u, v = _block_edges(rng, start, pool_size, start, pool_size, p_recurrent)
        keep = u != v
        _add_edges(G, u[keep], v[keep])
        if k + 1 < n_pools:
            _add_edges(G, *_block_edges(rng, start, pool_size, start + pool_size, pool_size,
                                        p_forward))
    return G


def modular_graph(n, n_modules, p_in, p_out, directed=False, seed=None) -> nx.Graph:
    """A stochastic block model with modules of near-equal size.

    Parameters
    ----------
    n : int
        Number of units (at least 1).
    n_modules : int
        Number of modules, between 1 and ``n``. Sizes differ by at most one unit; the larger
        modules come first.
    p_in : float in [0, 1]
        Probability of each edge between two distinct units of the same module.
    p_out : float in [0, 1]
        Probability of each edge between units of different modules.
    directed : bool, default False
        If True, return a ``DiGraph`` in which ``u -> v`` and ``v -> u`` are drawn
        independently; if False, a ``Graph`` with one draw per unordered pair.
    seed : None, int or numpy.random.Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    networkx.Graph or networkx.DiGraph
        Nodes ``0 .. n - 1``, module by module, each with the attribute ``pool=module``.
        Edge ``u -> v`` means unit ``u`` drives unit ``v``; an undirected edge works both
        ways. No self-loops.

    Notes
    -----
    The model is that of ``networkx.stochastic_block_model`` with near-equal ``sizes``,
    probability ``p_in`` on the diagonal blocks and ``p_out`` elsewhere, and nodes assigned to
    blocks in the same contiguous order. It is sampled with numpy by geometric skipping [2]_
    because networkx draws each edge with a Python call, which takes seconds for a 10,000-node
    graph.

    References
    ----------
    .. [1] Holland, Laskey & Leinhardt, "Stochastic blockmodels: first steps", Social
       Networks 5:109-137 (1983).
    .. [2] Batagelj & Brandes, "Efficient generation of large random networks", Phys. Rev. E
       71:036113 (2005).
    """
    n = _count(n, "n")
    n_modules = _count(n_modules, "n_modules")
    if n_modules > n:
        raise ValueError(f"n_modules must be at most n = {n}, got {n_modules}")
    p_in = _probability(p_in, "p_in")
    p_out = _probability(p_out, "p_out")
    directed = _flag(directed, "directed")
    rng = _as_rng(seed)

    base, extra = divmod(n, n_modules)
    sizes = [base + 1] * extra + [base] * (n_modules - extra)
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    module_of = np.repeat(np.arange(n_modules), sizes)

    G = nx.DiGraph() if directed else nx.Graph()
    for m in range(n_modules):
        G.add_nodes_from(range(starts[m], starts[m + 1]), pool=m)
    for m, size in enumerate(sizes):
        u, v = _block_edges(rng, starts[m], size, starts[m], size, p_in)
        # Undirected: keep one orientation of each pair so each pair is drawn exactly once.
        keep = u != v if directed else u < v
        _add_edges(G, u[keep], v[keep])
    if n_modules > 1:
        # One pass over all pairs is cheaper than n_modules**2 block calls; the draws that land
        # inside a module are discarded, as those pairs were drawn with p_in above.
        u, v = _block_edges(rng, 0, n, 0, n, p_out)
        keep = module_of[u] != module_of[v]
        if not directed:
            keep &= u < v
        _add_edges(G, u[keep], v[keep])
    return G


def bipartite_graph(n_visible, n_hidden, p=1.0, seed=None) -> nx.Graph:
    """Visible and hidden units with edges only between the two groups (an RBM).

    Parameters
    ----------
    n_visible : int
        Number of visible units (at least 1).
    n_hidden : int
        Number of hidden units (at least 1).
    p : float in [0, 1], default 1.0
        Probability of each visible-hidden edge; 1 gives the complete bipartite graph of a
        restricted Boltzmann machine.
    seed : None, int or numpy.random.Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    networkx.Graph
        Undirected: every edge couples its two units both ways, as in a Boltzmann machine.
        Visible nodes ``0 .. n_visible - 1`` carry ``role="visible"`` and ``bipartite=0``;
        hidden nodes ``n_visible .. n_visible + n_hidden - 1`` carry ``role="hidden"`` and
        ``bipartite=1`` (the attribute networkx's bipartite algorithms read).

    Notes
    -----
    There are no visible-visible or hidden-hidden edges, so hidden units are conditionally
    independent given the visible ones and vice versa, which is what allows block Gibbs
    sampling.

    References
    ----------
    .. [1] Smolensky, "Information processing in dynamical systems: foundations of harmony
       theory", in Rumelhart & McClelland (eds.), Parallel Distributed Processing, vol. 1,
       MIT Press (1986).
    .. [2] Hinton, "Training products of experts by minimizing contrastive divergence",
       Neural Computation 14:1771-1800 (2002).
    """
    n_visible = _count(n_visible, "n_visible")
    n_hidden = _count(n_hidden, "n_hidden")
    p = _probability(p, "p")
    rng = _as_rng(seed)

    G = nx.Graph()
    G.add_nodes_from(range(n_visible), role="visible", bipartite=0)
    G.add_nodes_from(range(n_visible, n_visible + n_hidden), role="hidden", bipartite=1)
    _add_edges(G, *_block_edges(rng, 0, n_visible, n_visible, n_hidden, p))
    return G


def ring_graph(n, k=1, directed=True) -> nx.Graph:
    """A ring in which each unit connects to the next ``k`` units.

    Parameters
    ----------
    n : int
        Number of units.
    k : int, default 1
        Number of successors of each unit: node ``i`` connects to ``i + 1, ..., i + k``
        (mod ``n``). Directed rings need ``1 <= k <= n - 1``; undirected rings need
        ``1 <= k`` and ``2 * k < n``, so that no pair is linked twice.
    directed : bool, default True
        If True, a ``DiGraph`` in which each unit has in-degree and out-degree ``k``; if False,
        a ``Graph`` in which each unit has degree ``2 * k``.

    Returns
    -------
    networkx.DiGraph or networkx.Graph
        Nodes ``0 .. n - 1``. Edge ``i -> i + j`` means unit ``i`` drives unit ``i + j``.

    Notes
    -----
    Deterministic, so it takes no seed. The directed ring with ``k = 1`` is the simple cycle
    reservoir of Rodan & Tino [1]_, which with one shared weight on all edges performs
    comparably to random reservoirs on many benchmarks.

    References
    ----------
    .. [1] Rodan & Tino, "Minimum complexity echo state network", IEEE Transactions on Neural
       Networks 22:131-144 (2011).

    Examples
    --------
    >>> sorted(ring_graph(4).edges())
    [(0, 1), (1, 2), (2, 3), (3, 0)]
    """
    n = _count(n, "n")
    k = _count(k, "k")
    directed = _flag(directed, "directed")
    if directed and k > n - 1:
        raise ValueError(f"k must be at most n - 1 = {n - 1} for a directed ring, got {k}")
    if not directed and 2 * k >= n:
        raise ValueError(f"k must satisfy 2 * k < n = {n} for an undirected ring, got {k}")

    G = nx.DiGraph() if directed else nx.Graph()
    G.add_nodes_from(range(n))
    u = np.repeat(np.arange(n), k)
    v = (u + np.tile(np.arange(1, k + 1), n)) % n
    _add_edges(G, u, v)
    return G


def directed_scale_free_graph(n, alpha=0.41, beta=0.54, gamma=0.05, delta_in=0.2,
                              delta_out=0.0, seed=None) -> nx.DiGraph:
    """A directed scale-free graph as a simple ``DiGraph``.

    Parameters
    ----------
    n : int
        Number of units (at least 3: growth starts from a 3-cycle).
    alpha : float in (0, 1], default 0.41
        Probability of adding a new unit with an edge to an existing unit chosen by in-degree.
    beta : float in (0, 1], default 0.54
        Probability of adding an edge between existing units, the source chosen by
        out-degree and the target by in-degree.
    gamma : float in (0, 1], default 0.05
        Probability of adding a new unit with an edge from an existing unit chosen by
        out-degree. ``alpha + beta + gamma`` must equal 1.
    delta_in : float >= 0, default 0.2
        Bias added to in-degrees when choosing targets.
    delta_out : float >= 0, default 0.0
        Bias added to out-degrees when choosing sources.
    seed : None, int or numpy.random.Generator
        Source of randomness, normalised with ``np.random.default_rng``.

    Returns
    -------
    networkx.DiGraph
        Nodes ``0 .. n - 1``. Edge ``u -> v`` means unit ``u`` drives unit ``v``. In- and
        out-degrees follow power laws.

    Notes
    -----
    Grows the model of Bollobas et al. [1]_ with ``networkx.scale_free_graph``, which returns
    a ``MultiDiGraph``; repeated edges are merged into one connection and self-loops are
    dropped, because a reservoir mask holds at most one weight per ordered pair. The number of
    edges is therefore random. networkx receives an integer seed drawn from ``seed`` and uses
    its own private ``random.Random``, not global state.

    References
    ----------
    .. [1] Bollobas, Borgs, Chayes & Riordan, "Directed scale-free graphs", Proceedings of the
       14th ACM-SIAM Symposium on Discrete Algorithms, 132-139 (2003).
    """
    n = _count(n, "n")
    if n < 3:
        raise ValueError(f"n must be at least 3 (growth starts from a 3-cycle), got {n}")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        check_in_interval(value, name, 0.0, 1.0)
    if abs(alpha + beta + gamma - 1.0) > 1e-9:
        raise ValueError(f"alpha + beta + gamma must equal 1, got {alpha + beta + gamma!r}")
    check_positive(delta_in, "delta_in", strict=False)
    check_positive(delta_out, "delta_out", strict=False)
    rng = _as_rng(seed)

    multigraph = nx.scale_free_graph(n, alpha=alpha, beta=beta, gamma=gamma, delta_in=delta_in,
                                     delta_out=delta_out, seed=int(rng.integers(2**32)))
    G = nx.DiGraph()
    G.add_nodes_from(range(n))
    G.add_edges_from((u, v) for u, v in multigraph.edges() if u != v)
    return G
