"""Contract every learning rule must keep, parametrized over all of them."""

import json

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import rules as R
from recur import tasks

RULES = {
    "bptt": lambda: R.bptt(),
    "weight_perturbation": lambda: R.weight_perturbation(1e-3, n_samples=4),
    "node_perturbation": lambda: R.node_perturbation(1e-3, n_samples=4),
    "node_perturbation_running": lambda: R.node_perturbation(1e-3, n_samples=4,
                                                             antithetic=False, baseline="running"),
    "hebbian": lambda: R.hebbian(),
    "anti_hebbian": lambda: R.anti_hebbian(),
    "oja": lambda: R.oja(),
    "bcm": lambda: R.bcm(),
    "covariance": lambda: R.covariance(),
    "intrinsic_plasticity": lambda: R.intrinsic_plasticity(),
    "chained": lambda: R.chain(R.node_perturbation(1e-3, n_samples=4), R.clip(1.0),
                               R.adam(1e-2), R.weight_decay(1e-4)),
    "partitioned": lambda: R.partition({"W": R.chain(R.oja(), R.normalize_rows(), R.scale(0.1)),
                                        ("W_out", "b_out"): R.bptt()}),
    "added": lambda: R.add(R.bptt(), R.hebbian(params=("W",))),
}


@pytest.fixture(scope="module", params=[True, False], ids=["sparse-W", "dense-W"])
def setup(request):
    net = rc.ESN(rc.Topology(nx.gnp_random_graph(25, 0.2, directed=True, seed=1)), leak=0.5,
                 n_in=1, n_out=1, bias_scaling=0.1, sparse=request.param)
    u, y = tasks.next_step(tasks.sine_sum(81, rng=0))
    return net, net.init(0), tasks.TeacherForced(u, y, washout=10)


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


@pytest.fixture(params=sorted(RULES))
def rule(request):
    return RULES[request.param]()


def test_name_and_hyperparameters_are_loggable(rule):
    assert isinstance(rule.name, str) and rule.name
    json.dumps(dict(rule.hparams), default=str)
    assert not rule.is_transform and rule.requests


def test_updates_have_the_parameters_structure(rule, setup):
    net, params, data = setup
    evidence = net.collect(params, data, rule.requests, rng=0)
    updates, _ = rule.update(evidence, rule.init(params), params, rng=1)
    assert updates and set(updates) <= set(params)
    for name, u in updates.items():
        p = params[name]
        assert sp.issparse(u) == sp.issparse(p)
        if sp.issparse(p):
            assert np.array_equal(u.indptr, p.indptr) and np.array_equal(u.indices, p.indices)
        else:
            assert np.shape(u) == np.shape(p)
            if name == "W":  # a dense W's update never reaches off the graph
                assert not np.asarray(u)[~net.topology.mask.toarray()].any()
        assert np.all(np.isfinite(_dense(u)))


def test_deterministic_for_a_seed_and_no_mutation(rule, setup):
    net, params, data = setup
    before = {k: _dense(v).copy() for k, v in params.items()}
    outs = []
    for _ in range(2):
        p, hist = rc.train(net, params, R.chain(rule, R.scale(1e-3)), data, epochs=2, rng=7,
                           progress=False)
        outs.append(p)
    for k in params:
        np.testing.assert_array_equal(_dense(params[k]), before[k])
        np.testing.assert_array_equal(_dense(outs[0][k]), _dense(outs[1][k]))
    # Training respects the graph.
    W = _dense(outs[0]["W"])
    assert not W[~net.topology.mask.toarray()].any()
