"""examples/ep_gradient_alignment.py at CI size: EP's bias falls as beta^1, symmetric EP's as
beta^2 (over several random networks)."""

import numpy as np

from example_loader import load_example


def test_ep_bias_falls_with_beta_and_faster_when_symmetric():
    module = load_example("ep_gradient_alignment")
    res = module.main(["--quick", "--networks", "4"])
    one = [1 - np.median(res[(b, False)][:, 0]) for b in (0.1, 0.01)]
    sym = [1 - np.median(res[(b, True)][:, 0]) for b in (0.1, 0.01)]
    assert np.median(res[(0.01, False)][:, 0]) > 0.999
    # O(beta) bias: 1 - cos ~ beta^2 falls ~100x per decade; O(beta^2): ~10^4x.
    assert one[0] / one[1] > 20
    assert sym[0] / sym[1] > 1e3
    assert sym[0] < one[0] and sym[1] < one[1]
    for b in (0.1, 0.01):
        assert abs(np.median(res[(b, True)][:, 1]) - 1) < abs(
            np.median(res[(b, False)][:, 1]) - 1) + 1e-3
