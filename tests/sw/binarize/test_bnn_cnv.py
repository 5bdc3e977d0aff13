"""bnn-cnv, the binarized CNN: its forward pass against brute force, its folded network against
PyTorch map by map, the binary.npz layout of conv networks, and their version-2 images."""

import json

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.binarize.layers import BnnCnv, FloatCnv, clip_latent_weights, cnv_maps, sign
from eiex.sw.binarize.pipeline import binarize, build_bnn, raw_tensors, train_schedule
from eiex.sw.binarize.thresholds import conv_matrix, fold_model, run_folded
from eiex.sw.data import Split, dataset_from_arrays, load_dataset
from eiex.sw.images.folder import MANIFEST
from eiex.sw.images.xnor import arithmetic
from eiex.sw.images.xnor.export import image_from_folded, read_folded
from eiex.sw.images.xnor.files import load_image, write_image
from eiex.sw.train import TrainConfig, predict, seed_everything
from test_binary_conv import brute_force

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_EPOCH = dict(binary_schedule=(TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
                 float_schedule=(TrainConfig(epochs=1, lr=1e-3, batch_size=100),), threads=1, log=lambda *_: None)


def randomize_norms(model, rng, zero_gamma=True):
    """Batch norms far from their defaults: negative gammas (flipped rows), one gamma of 0 per norm
    (a channel that always or never fires), means and variances that move the thresholds."""
    with torch.no_grad():
        for norm in model.modules():
            if isinstance(norm, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = norm.num_features
                gamma = rng.normal(0, 1, n)
                if zero_gamma:
                    gamma[n // 2] = 0.0
                norm.weight.copy_(torch.from_numpy(gamma))
                norm.bias.copy_(torch.from_numpy(rng.normal(0, 1, n)))
                norm.running_mean.copy_(torch.from_numpy(rng.normal(0, 3, n)))
                norm.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 4, n)))


def batch_norm(x, norm, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    p = [t.detach().double().numpy().reshape(shape) for t in (norm.weight, norm.bias, norm.running_mean,
                                                               norm.running_var)]
    return p[0] * (x - p[2]) / np.sqrt(p[3] + norm.eps) + p[1]


def brute_force_scores(model: BnnCnv, raw: np.ndarray) -> np.ndarray:
    """BnnCnv in eval mode read literally, in float64: sign, +-1 convolution (explicit loops), batch
    norm, sign, max over each pool window (explicit loops), flatten channels-first, fully connected."""
    n = len(raw)
    x = np.where(raw.reshape(n, *model.in_shape) >= model.input_threshold, 1, -1)
    convs = iter(zip(model.convs, model.conv_norms))
    for kind, *args in model.maps:
        x = np.where(x >= 0, 1, -1)
        if kind == "conv":
            conv, norm = next(convs)
            y = brute_force(x, np.where(conv.weight.detach().numpy() >= 0, 1, -1)).astype(np.float64)
            if conv.alpha() is not None:
                y = y * conv.alpha().detach().double().numpy()[None, :, None, None]
            x = batch_norm(y, norm, 1)
        else:
            p = args[0]
            c, h, w = x.shape[1:]
            pooled = np.empty((n, c, h // p, w // p), dtype=np.int64)
            for oy in range(h // p):
                for ox in range(w // p):
                    pooled[:, :, oy, ox] = x[:, :, oy * p:(oy + 1) * p, ox * p:(ox + 1) * p].max(axis=(2, 3))
            x = pooled
    x = x.reshape(n, -1)
    for linear, norm in zip(model.linears, model.norms):
        y = np.where(x >= 0, 1.0, -1.0) @ np.where(linear.weight.detach().numpy() >= 0, 1.0, -1.0).T
        if linear.alpha() is not None:
            y = y * linear.alpha().detach().double().numpy()
        x = batch_norm(y, norm, 1)
    return x


@pytest.mark.parametrize("mode", ["bnn", "xnor"])
def test_the_forward_pass_is_the_brute_force_reading(mode):
    torch.manual_seed(0)
    # 2 x 11 x 10 maps: conv 3x3 -> 9 x 8, conv 2x2 -> 8 x 7, pool 2 (a trailing row and column
    # dropped) -> 4 x 3, conv 2x2 -> 3 x 2, pool 3 -> 1 x 0 would leave nothing, so FC from 3 x 2 x 4
    model = BnnCnv((2, 11, 10), (("conv", 3, 3), ("conv", 5, 2), ("pool", 2), ("conv", 4, 2)), (7,), mode,
                   n_classes=3, input_threshold=100).eval()
    with torch.no_grad():
        for layer in (*model.convs, *model.linears):
            layer.weight.uniform_(-1, 1)
    randomize_norms(model, np.random.default_rng(1))
    raw = np.random.default_rng(2).integers(0, 256, (40, 2 * 11 * 10))
    with torch.no_grad():
        scores = model(torch.from_numpy(raw).float()).double().numpy()
    np.testing.assert_allclose(scores, brute_force_scores(model, raw), rtol=1e-5, atol=1e-5)
    assert model.describe() == ["11x10x2", "3C3", "5C2", "MP2", "4C2", "FC7", "FC3"]


def test_built_in_shapes_and_bad_shapes_in_one_line():
    model = build_bnn("bnn-cnv")
    assert model.describe() == ["28x28x1", "32C3", "32C3", "MP2", "64C3", "64C3", "MP2", "FC256", "FC10"]
    assert model.shapes[-1] == (64, 4, 4) and model.sizes == (1024, 256, 10)
    assert [type(m).__name__ for m in FloatCnv().modules()].count("Conv2d") == 4
    assert cnv_maps((8, 8, 16)) == (("conv", 8, 3), ("conv", 8, 3), ("pool", 2), ("conv", 16, 3))
    for call, message in [
        (lambda: build_bnn("bnn-cnv", channels=(8, 8, 8, 8, 8, 8)), r"^bnn-cnv: conv 3x3 \(step 8\) does not fit its "
                                                                    r"2 x 2 input map; use fewer conv layers"),
        (lambda: build_bnn("bnn-cnv", channels=(8, 0)), r"^conv widths must be a list of positive integers"),
        (lambda: build_bnn("bnn-mlp", channels=(8,)), r"^channels sets the conv widths of bnn-cnv; bnn-mlp has no "),
        (lambda: build_bnn("bnn-cnv", mode="binaryconnect"), r"^bnn-cnv needs binary activations"),
        (lambda: BnnCnv((1, 4, 4), (("pool", 5),)), r"max-pool 5x5 \(step 1\) does not fit its 4 x 4 input map"),
        (lambda: binarize("bnn-cnv", hidden=(0,)), r"^hidden widths must be positive integers"),
    ]:
        with pytest.raises(EiexError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist5k")
    return data.train.images[::8], data.train.labels[::8], data.test.images[::5], data.test.labels[::5]


@pytest.fixture(scope="module")
def trained(digits):
    """A small bnn-cnv (28x28x1-4C3-6C3-MP2-8C3-FC12-FC10, xnor) after one epoch on 500 digits, with
    batch norms randomized afterwards so that rows flip and gamma = 0 channels exist."""
    x, y = digits[:2]
    seed_everything(0)
    model = BnnCnv(maps=cnv_maps((4, 6, 8)), hidden=(12,))
    train_schedule(model, raw_tensors(Split(x, y), (1, 28, 28)), (TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
                   seed=0, desc="test", after_step=lambda: clip_latent_weights(model))
    randomize_norms(model, np.random.default_rng(3))
    return model.eval()


def torch_layer_outputs(model: BnnCnv, raw: np.ndarray) -> list[np.ndarray]:
    """Every layer's output bits as the image's golden model gives them (maps channels-last), and the
    output layer's scores."""
    outputs = []
    with torch.no_grad():
        x = model.binarize_input(torch.from_numpy(raw).float())
        convs = iter(zip(model.convs, model.conv_norms))
        for kind, *args in model.maps:
            if kind == "conv":
                conv, norm = next(convs)
                x = sign(norm(conv(x)))
            else:
                x = torch.nn.functional.max_pool2d(x, args[0])
            outputs.append((x.permute(0, 2, 3, 1).reshape(len(raw), -1) > 0).numpy().astype(np.uint8))
        x = x.flatten(1)
        for l, (linear, norm) in enumerate(zip(model.linears, model.norms)):
            x = norm(linear(x))
            if l < len(model.linears) - 1:
                x = sign(x)
                outputs.append((x > 0).numpy().astype(np.uint8))
        outputs.append(x.double().numpy())
    return outputs


def test_the_folded_network_equals_pytorch_map_by_map(trained, digits):
    raw = digits[2].reshape(len(digits[2]), -1)
    arrays = fold_model(trained)
    image = image_from_folded(arrays)
    expected = torch_layer_outputs(trained, raw)
    golden = arithmetic.run_layers(image, arithmetic.binarize_input(image, raw))
    assert [layer.kind for layer in image.layers] == ["conv", "conv", "pool", "conv", "hidden", "output"]
    for layer, ours, theirs in zip(image.layers[:-1], golden, expected):
        assert np.array_equal(ours, theirs), layer.name
    scores = arithmetic.scores(image, golden[-1])
    np.testing.assert_allclose(scores, expected[-1], rtol=1e-5, atol=1e-5)
    torch_predictions = predict(trained, torch.from_numpy(raw).float()).numpy()
    assert np.array_equal(scores.argmax(1), torch_predictions)
    assert np.array_equal(run_folded(arrays, digits[2]).argmax(1), torch_predictions)
    # the batch norms made some channels flip and some never or always fire
    thresholds = np.concatenate([arrays[f"t{l}"] for l in range(4)])
    columns = np.concatenate([np.full(len(arrays[f"t{l}"]), np.prod(arrays[f"w{l}"].shape[1:])) for l in range(4)])
    assert np.any(thresholds <= 0) and np.any(thresholds > columns)


def test_the_binary_npz_layout_of_a_conv_network(trained):
    arrays = fold_model(trained)
    assert sorted(arrays) == sorted(["w0", "t0", "w1", "t1", "w2", "t2", "w3", "t3", "w4", "scale", "bias", "kinds",
                                     "input_shape", "pool_sizes", "input_threshold"])
    assert arrays["kinds"].tolist() == ["conv", "conv", "pool", "conv", "hidden", "output"]
    assert arrays["input_shape"].tolist() == [28, 28, 1] and arrays["pool_sizes"].tolist() == [2]
    assert [arrays[f"w{l}"].shape for l in range(5)] == [(4, 3, 3, 1), (6, 3, 3, 4), (8, 3, 3, 6), (12, 800), (10, 12)]
    # a conv's w is its sign kernels (M, k, k, C), rows negated where gamma * alpha < 0: the image's columns
    kernels = np.where(trained.convs[1].weight.detach().numpy() >= 0, 1, -1)
    flipped = (trained.conv_norms[1].weight.detach().numpy() < 0)[:, None]
    assert np.array_equal(arrays["w1"].reshape(6, -1), np.where(flipped, -1, 1) * conv_matrix(kernels))
    # saved and read back without pickling
    network = read_folded({k: np.array(v) for k, v in arrays.items()})
    assert [layer.name for layer in network.layers] == ["conv1", "conv2", "pool1", "conv3", "fc1", "fc2"]
    assert network.input_shape == (28, 28, 1)


def test_the_exported_version_2_image_loads_and_runs_the_folded_network(trained, digits, tmp_path):
    arrays = fold_model(trained)
    raw = digits[2].reshape(len(digits[2]), -1)
    # pe and simd give one value per layer with weights: the pool layer takes none
    image = image_from_folded(arrays, pe=[2, 3, 8, 12, 5], simd=[9, 18, 27, 100, 12])
    write_image(image, tmp_path / "img", formats=("hex", "bin"))
    manifest = json.loads((tmp_path / "img" / MANIFEST).read_text())
    assert manifest["version"] == 2 and manifest["input"]["shape"] == [28, 28, 1]
    assert [(layer.get("pe"), layer.get("simd")) for layer in manifest["layers"]] == \
        [(2, 9), (3, 18), (None, None), (8, 27), (12, 100), (5, 12)]
    loaded = load_image(tmp_path / "img")
    y = arithmetic.run(loaded, arithmetic.binarize_input(loaded, raw))
    np.testing.assert_array_equal(arithmetic.scores(loaded, y), run_folded(arrays, digits[2]))
    assert np.array_equal(arithmetic.predict(loaded, raw), predict(trained, torch.from_numpy(raw).float()).numpy())
    # thresholds beyond [0, K + 1] are clamped in the image without changing a decision
    for layer, key in zip([l for l in loaded.layers if l.kind == "conv"], ["t0", "t1", "t2"]):
        assert np.array_equal(layer.thresholds, np.clip(arrays[key], 0, layer.columns + 1))


def test_binarize_bnn_cnv_reports_conv_and_pool_layers(digits):
    x_train, y_train, x_test, y_test = digits
    data = dataset_from_arrays({"x_train": x_train, "y_train": y_train, "x_test": x_test[:100],
                                "y_test": y_test[:100]}, "digits")
    result = binarize("bnn-cnv", data, seed=0, channels=(4, 4), hidden=(8,), **ONE_EPOCH)
    r = result.report
    assert r["layers"] == ["28x28x1", "4C3", "4C3", "MP2", "FC8", "FC10"]
    assert r["input"] == {"kind": "binary", "threshold": 128.0, "shape": [28, 28, 1]}
    assert r["agreement"] == 1.0 and r["binary_accuracy"] > 0.3  # one epoch on 500 digits, far above chance
    assert [d["kind"] for d in r["layer_details"]] == ["conv", "conv", "pool", "hidden", "output"]
    conv2, pool = r["layer_details"][1:3]
    assert conv2["in_shape"] == [26, 26, 4] and conv2["out_shape"] == [24, 24, 4] and conv2["kernel"] == 3
    assert conv2["threshold_key"] == "t1" and conv2["in_features"] == 36
    assert pool == {"name": "pool1", "kind": "pool", "in_shape": [24, 24, 4], "size": 2, "out_shape": [12, 12, 4]}

