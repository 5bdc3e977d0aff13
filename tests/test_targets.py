"""The built-in recipes reach Deep Compression's targets on the 1,000 held-out MNIST-5k digits.

LeNet-300-100: >= 40x within 0.5 pp of its dense baseline; LeNet-5: >= 39x within 0.5 pp.
Seeded and deterministic, so a change that costs accuracy or size fails here.
"""

import pytest

from eiex.sw.compress import compress


@pytest.mark.parametrize("model, ratio", [("lenet300", 40.0), ("lenet5", 39.0)])
def test_builtin_recipe_meets_target(model, ratio):
    report = compress(model, seed=0, log=lambda message: None).report
    assert report["compression_ratio"] >= ratio
    assert report["compressed_accuracy"] >= report["dense_accuracy"] - 0.005
    assert report["dense_accuracy"] > {"lenet300": 0.93, "lenet5": 0.96}[model]
