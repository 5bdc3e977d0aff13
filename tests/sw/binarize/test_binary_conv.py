"""BinaryConv2d: the +-1 convolution of xnor-image.md section 7, against brute force and the image's
golden model."""

import numpy as np
import pytest
import torch

from eiex.errors import EiexError
from eiex.sw.binarize.layers import BinaryConv2d, clip_latent_weights
from eiex.sw.images.xnor.arithmetic import convolve

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def layer_with_weights(c, m, k, mode="bnn", seed=0):
    torch.manual_seed(seed)
    layer = BinaryConv2d(c, m, k, mode).eval()
    with torch.no_grad():
        layer.weight.uniform_(-1, 1)
    return layer


def brute_force(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid stride-1 correlation of +-1 maps ``x`` (N, C, H, W) with +-1 kernels ``w`` (M, C, k, k)."""
    n, c, h, wd = x.shape
    m, _, k, _ = w.shape
    out = np.zeros((n, m, h - k + 1, wd - k + 1), dtype=np.int64)
    for oy in range(h - k + 1):
        for ox in range(wd - k + 1):
            for ky in range(k):
                for kx in range(k):
                    for ci in range(c):
                        out[:, :, oy, ox] += x[:, ci, oy + ky, ox + kx, None] * w[None, :, ci, ky, kx]
    return out


@pytest.mark.parametrize("c, m, k, h, w", [(1, 4, 3, 7, 6), (3, 5, 2, 5, 5), (2, 3, 1, 4, 3), (4, 2, 5, 6, 7)])
def test_bnn_convolution_is_the_plus_minus_one_sum_and_the_images_conv_layer(c, m, k, h, w):
    layer = layer_with_weights(c, m, k)
    rng = np.random.default_rng(k)
    x = rng.choice([-1.0, 1.0], (6, c, h, w)).astype(np.float32)
    sign_w = np.where(layer.weight.detach().numpy() >= 0, 1, -1)
    with torch.no_grad():
        d = layer(torch.from_numpy(x)).numpy()
    assert np.array_equal(d, brute_force(x.astype(np.int64), sign_w))
    # the image's conv layer reads the same network channels-last with columns (ky * k + kx) * C + ci,
    # which is weight.permute(0, 2, 3, 1): its bits are (d + K) / 2 >= T
    columns = k * k * c
    thresholds = rng.integers(0, columns + 2, m)
    bits = (x.transpose(0, 2, 3, 1) > 0).astype(np.uint8).reshape(6, -1)
    weights = sign_w.transpose(0, 2, 3, 1).reshape(m, columns)
    expected = ((d + columns) // 2 >= thresholds[None, :, None, None]).astype(np.uint8)
    assert np.array_equal(convolve(bits, (h, w, c), k, weights, thresholds),
                          expected.transpose(0, 2, 3, 1).reshape(6, -1))


def test_xnor_mode_scales_each_channel_by_its_mean_absolute_latent_weight():
    bnn, xnor = layer_with_weights(3, 4, 3, "bnn"), layer_with_weights(3, 4, 3, "xnor")
    x = torch.randn(2, 3, 6, 6)
    alpha = xnor.weight.detach().abs().mean(dim=(1, 2, 3))
    with torch.no_grad():
        assert torch.allclose(xnor(x), bnn(x) * alpha[None, :, None, None])


def test_training_leaves_dropped_inputs_out_and_weights_are_clipped():
    layer = layer_with_weights(1, 1, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[[0.5, -0.5], [0.5, 3.0]]]]))
    x = torch.tensor([[[[1.0, 0.0], [-2.0, 0.0]]]])  # two inputs dropped
    assert layer.train()(x).item() == 1.0 - 1.0  # only the two kept inputs count
    assert layer.eval()(x).item() == 1.0 - 1.0 - 1.0 + 1.0  # eval: sign(0) = +1
    clip_latent_weights(torch.nn.Sequential(layer))
    assert layer.weight.max().item() == 1.0


@pytest.mark.parametrize("args, message", [((0, 2, 3), "in_channels must be a positive integer, not 0"),
                                           ((1, 2, 2.5), "kernel_size must be a positive integer"),
                                           ((1, 2, 3, "ternary"), "mode must be one of")])
def test_bad_arguments_are_one_line(args, message):
    with pytest.raises(EiexError, match=message) as e:
        BinaryConv2d(*args)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", ["bnn", "xnor"])
def test_a_folded_conv_layer_fires_where_the_trained_layer_and_its_batch_norm_do(mode):
    from eiex.sw.binarize.layers import sign
    from eiex.sw.binarize.thresholds import BatchNormParams, compile_conv

    torch.manual_seed(1)
    c, m, k, h, w = 3, 6, 3, 7, 8
    layer = BinaryConv2d(c, m, k, mode)
    norm = torch.nn.BatchNorm2d(m)
    with torch.no_grad():
        layer.weight.uniform_(-1, 1)
        norm.weight.copy_(torch.tensor([1.5, -0.7, 0.0, 2.0, -1.0, 0.3]))  # gamma < 0 flips, gamma = 0
        norm.bias.uniform_(-1, 1)
        norm.running_mean.uniform_(-4, 4)
        norm.running_var.uniform_(0.5, 9)
    layer.eval(), norm.eval()
    x = sign(torch.randn(20, c, h, w))
    with torch.no_grad():
        fires = (norm(layer(x)) >= 0).numpy().astype(np.uint8)  # (N, M, Ho, Wo)
    alpha = layer.alpha()
    fold = compile_conv(sign(layer.weight.detach()).numpy(), None if alpha is None else alpha.detach().double().numpy(),
                        BatchNormParams.of(*(t.detach().double().numpy() for t in (norm.weight, norm.bias,
                                                                                  norm.running_mean, norm.running_var)),
                                           norm.eps))
    bits = (x.numpy().transpose(0, 2, 3, 1) > 0).astype(np.uint8).reshape(20, -1)
    engine = convolve(bits, (h, w, c), k, fold.weights, fold.thresholds)
    assert np.array_equal(engine, fires.transpose(0, 2, 3, 1).reshape(20, -1))
    assert fold.flipped.tolist() == [g < 0 for g in (1.5, -0.7, 0.0, 2.0, -1.0, 0.3)]
