import networkx as nx
import pytest

import recur as rc


@pytest.fixture
def small_topology():
    """A 40-unit sparse directed random graph with cycles."""
    return rc.Topology(nx.gnp_random_graph(40, 0.15, directed=True, seed=7))
