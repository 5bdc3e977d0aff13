"""Knowledge distillation end to end: the distillation loss inside ``fit`` (at alpha = 0 it is
cross-entropy, weight for weight), every kind of teacher through ``compress`` and ``binarize``
(the run's own model, an output folder of either, a FILE.py:FUNCTION), and the one-line errors of
a teacher that cannot be used. Small models on 600 MNIST-5k digits keep it fast."""

import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

import eiex
from eiex.errors import EiexError
from eiex.sw.binarize.pipeline import binarize
from eiex.sw.compress.methods.distill import Distillation, LiveDistillation
from eiex.sw.data import InputNorm, dataset_from_arrays, load_dataset
from eiex.sw.npz import read_npz
from eiex.sw.teacher import Distill, resolve_teacher, teacher_function
from eiex.sw.train import Tensors, TrainConfig, fit
from eiex.sw.user_model import load_model_function

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"train": {"epochs": 2}, "prune": {"epochs": 1, "steps": 1, "sensitivity": [0.0]}, "share": {"epochs": 1},
        "layers": {name: {"quality": 1.0} for name in ("0", "2")}}
QUIET = {"log": lambda *_: None}

TEACHER_PY = """
import torch
from torch import nn


def linear():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def five_classes():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 5))
"""


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    """600 training and 200 test MNIST-5k digits drawn at random, uint8, (n, 28, 28)."""
    ds = load_dataset("mnist5k")
    i = np.random.default_rng(0).permutation(len(ds.train.labels))[:600]
    j = np.random.default_rng(1).permutation(len(ds.test.labels))[:200]
    return (ds.train.images[i], ds.train.labels[i]), (ds.test.images[j], ds.test.labels[j])


@pytest.fixture(scope="module")
def flat(digits):
    (x, y), (tx, ty) = digits
    return {"train": (x.reshape(len(x), -1), y), "test": (tx.reshape(len(tx), -1), ty)}


@pytest.fixture(scope="module")
def student_data(digits):
    """The training digits as compress's student sees them (normalised) and raw."""
    (x, y), _ = digits
    norm = InputNorm.fit(x.reshape(len(x), -1))
    return torch.from_numpy(norm.apply(x.reshape(len(x), -1))), x.reshape(len(x), -1), torch.from_numpy(y)


@pytest.fixture(scope="module")
def teacher_folder(flat, teacher_py, tmp_path_factory):
    """A compress output folder of FILE.py:FUNCTION's MLP (a teacher folder must name a model eiex can
    rebuild: a built-in name or FILE.py:FUNCTION)."""
    out = tmp_path_factory.mktemp("teacher") / "mlp"
    recipe = {**TINY, "layers": {"1": {"quality": 1.0}, "3": {"quality": 1.0}}}  # after the Flatten
    eiex.compress(f"{teacher_py}:mlp", **flat, recipe=recipe, **QUIET).save(out)
    return out


@pytest.fixture(scope="module")
def teacher_py(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.py"
    path.write_text(TEACHER_PY)
    return path


@pytest.fixture(scope="module")
def tiny_binarize(digits):
    """``binarize(teacher)``: bnn-mlp 784-32-10 on the digits, one epoch per stage, computed once."""
    (x, y), (tx, ty) = digits
    data = dataset_from_arrays({"x_train": x, "y_train": y, "x_test": tx, "y_test": ty}, "arrays")

    @functools.cache
    def run(teacher):
        return binarize("bnn-mlp", data, hidden=(32,), threads=1, dropout=(0.0, 0.0),
                        binary_schedule=(TrainConfig(epochs=1, lr=1e-2, batch_size=100),),
                        float_schedule=(TrainConfig(epochs=1, lr=1e-3, batch_size=100),),
                        distill=None if teacher is None else Distill(teacher), **QUIET)

    return run


# ---- the loss inside fit -------------------------------------------------------------------------


def trained(loss=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))
    g = torch.Generator().manual_seed(0)
    data = Tensors(torch.randn(200, 20, generator=g), torch.randint(0, 4, (200,), generator=g))
    fit(model, data, TrainConfig(epochs=2, lr=1e-2, batch_size=32), seed=0, loss=loss)
    return [p.detach().clone() for p in model.parameters()]


TEACHER_LOGITS = torch.randn(200, 4, generator=torch.Generator().manual_seed(5)) * 3


def test_distillation_at_alpha_0_trains_exactly_as_cross_entropy():
    plain = trained()
    hard_only = trained(Distillation(TEACHER_LOGITS, 4.0, 0.0).loss)
    assert all(torch.equal(a, b) for a, b in zip(plain, hard_only))


def test_distillation_at_alpha_1_follows_the_teacher():
    plain = trained()
    soft_only = trained(Distillation(TEACHER_LOGITS, 4.0, 1.0).loss)
    assert not all(torch.equal(a, b) for a, b in zip(plain, soft_only))


def test_the_loss_gets_each_batchs_own_teacher_rows():
    """fit passes the batch's sample indexes: with alpha = 1 and T = 1, the loss is the KL divergence
    to the rows of the teacher's logits of exactly those samples."""
    seen = []
    distill = Distillation(TEACHER_LOGITS, 1.0, 1.0)

    def loss(logits, labels, batch, inputs):
        seen.append(batch.clone())
        expected = nn.functional.kl_div(logits.log_softmax(1), TEACHER_LOGITS[batch].softmax(1), reduction="batchmean")
        value = distill.loss(logits, labels, batch)
        torch.testing.assert_close(value, expected)
        return value

    trained(loss)
    everything = torch.cat(seen)
    assert len(everything) == 2 * 200 and torch.equal(everything[:200].sort().values, torch.arange(200))


# ---- teachers through compress -------------------------------------------------------------------


def test_compress_distils_from_its_own_dense_model(flat):
    messages = []
    result = eiex.compress(mlp(), **flat, recipe={**TINY, "distill": {"teacher": "dense", "alpha": 0.5}},
                           log=messages.append)
    assert result.report["methods"]["distill"] == {"teacher": "dense", "temperature": 4.0, "alpha": 0.5}
    assert result.report["recipe"]["distill"]["teacher"] == "dense"
    assert any(m.startswith("distilling from dense (T = 4, alpha = 0.5)") for m in messages)


def test_compress_with_a_teacher_at_alpha_0_is_plain_compress(flat):
    """alpha = 0 leaves only the cross-entropy term: every stage trains as without a teacher."""
    plain = eiex.compress(mlp(), **flat, recipe=TINY, **QUIET)
    taught = eiex.compress(mlp(), **flat, recipe={**TINY, "distill": {"teacher": "dense", "alpha": 0.0}}, **QUIET)
    assert taught.report["methods"]["distill"]["alpha"] == 0.0 and plain.report["methods"]["distill"] is None
    assert plain.compressed.keys() == taught.compressed.keys()
    assert all(np.array_equal(plain.compressed[k], taught.compressed[k]) for k in plain.compressed)


def test_a_teacher_folder_gives_its_dense_models_logits(teacher_folder, teacher_py, student_data):
    x, raw, _ = student_data
    logits = resolve_teacher(str(teacher_folder), student_x=x, raw_images=raw, n_classes=10)
    model = load_model_function(f"{teacher_py}:mlp")
    dense = read_npz(teacher_folder / "dense.npz")
    with torch.no_grad():
        for l, layer in enumerate((model[1], model[3])):
            layer.weight.copy_(torch.from_numpy(dense[f"w{l}"]))
            layer.bias.copy_(torch.from_numpy(dense[f"b{l}"]))
    norm = InputNorm(**json.loads((teacher_folder / "report.json").read_text())["input"])
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(norm.apply(raw)))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_compress_accepts_a_compress_output_folder_as_teacher(flat, teacher_folder):
    result = eiex.compress(mlp(), **flat, recipe={**TINY, "distill": {"teacher": str(teacher_folder)}}, **QUIET)
    assert result.report["methods"]["distill"]["teacher"] == str(teacher_folder)


def test_a_teacher_function_runs_on_the_students_inputs(teacher_py, student_data):
    x, raw, _ = student_data
    logits = resolve_teacher(f"{teacher_py}:linear", student_x=x, raw_images=raw, n_classes=10)
    torch.manual_seed(3)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    with torch.no_grad():
        torch.testing.assert_close(logits, reference(x))


def test_compress_accepts_a_binarize_output_folder_as_teacher(flat, tiny_binarize, tmp_path):
    tiny_binarize(None).save(tmp_path / "bnn")
    result = eiex.compress(mlp(), **flat, recipe={**TINY, "distill": {"teacher": str(tmp_path / "bnn")}}, **QUIET)
    assert result.report["methods"]["distill"]["teacher"] == str(tmp_path / "bnn")


# ---- teachers through binarize -------------------------------------------------------------------


def test_binarize_distils_from_its_float_twin(tiny_binarize):
    result = tiny_binarize("float")
    assert result.report["training"]["distill"] == {"teacher": "float", "temperature": 4.0, "alpha": 0.9}
    assert tiny_binarize(None).report["training"]["distill"] is None
    # the student differs from the network trained on the labels alone
    assert any(not np.array_equal(a, result.arrays[k]) for k, a in tiny_binarize(None).arrays.items())


def test_api_binarize_passes_the_teacher_on(digits, monkeypatch):
    from eiex.sw.binarize import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "binarize", lambda *args, **kwargs: seen.update(kwargs))
    (x, y), (tx, ty) = digits
    eiex.binarize("bnn-mlp", train=(x, y), test=(tx, ty), teacher="float", temperature=2.0, alpha=0.3, **QUIET)
    assert seen["distill"] == Distill("float", 2.0, 0.3)


# ---- teachers that cannot be used ----------------------------------------------------------------


@pytest.fixture
def resolve(student_data):
    x, raw, _ = student_data
    return lambda spec, **kw: resolve_teacher(spec, student_x=x, raw_images=raw, n_classes=10, **kw)


def one_line(excinfo):
    assert "\n" not in str(excinfo.value)


def test_a_missing_folder_is_refused(resolve, tmp_path):
    with pytest.raises(EiexError, match=r"is neither dense nor float, FILE.py:FUNCTION nor an output folder") as e:
        resolve(str(tmp_path / "nonexistent"))
    one_line(e)


def test_a_folder_without_report_is_refused(resolve, tmp_path):
    with pytest.raises(EiexError, match=r"has no report.json: give a compress or binarize output folder") as e:
        resolve(str(tmp_path))
    one_line(e)


def test_an_unknown_name_is_refused(resolve):
    with pytest.raises(EiexError, match=r"teacher 'teacher' is neither dense nor float") as e:
        resolve("teacher")
    one_line(e)


def test_the_runs_own_model_before_it_is_trained_is_refused(resolve):
    with pytest.raises(EiexError, match=r"teacher 'dense' is this run's own model, which is not trained yet") as e:
        resolve("dense")
    one_line(e)


def test_a_teacher_with_too_few_classes_is_refused(resolve, teacher_py):
    with pytest.raises(EiexError, match=r"scores 5 classes; the data has 10") as e:
        resolve(f"{teacher_py}:five_classes")
    one_line(e)


def test_a_folder_of_a_module_eiex_cannot_rebuild_is_refused(resolve, tmp_path):
    """What eiex.compress(module).save(...) writes: a report naming the module's class."""
    (tmp_path / "module").mkdir()
    (tmp_path / "module" / "report.json").write_text('{"model": "Sequential"}')
    np.savez(tmp_path / "module" / "dense.npz", w0=np.zeros((10, 784)), b0=np.zeros(10))
    with pytest.raises(EiexError, match=r"cannot rebuild its model 'Sequential'") as e:
        resolve(str(tmp_path / "module"))
    one_line(e)


def test_compress_refuses_a_missing_teacher_before_training(flat, tmp_path, monkeypatch):
    from eiex.sw.compress import pipeline

    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: pytest.fail("trained before checking the teacher"))
    with pytest.raises(EiexError, match="is neither dense nor float"):
        eiex.compress(mlp(), **flat, recipe={**TINY, "distill": {"teacher": str(tmp_path / "none")}}, **QUIET)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0}, "temperature must be a positive number, not 0"),
    ({"temperature": float("inf")}, "temperature must be a positive number"),
    ({"alpha": 1.5}, r"alpha must lie in \[0, 1\], not 1.5"),
    ({"alpha": True}, r"alpha must lie in \[0, 1\], not True"),
])
def test_distill_settings_are_checked(kwargs, message):
    with pytest.raises(EiexError, match=message):
        Distill("float", **kwargs)


# ---- live distillation: the teacher sees each (shifted) batch as the student does ------------------


def test_a_live_teacher_on_unshifted_batches_trains_exactly_as_precomputed_logits():
    """With no shift the batches are the samples themselves: asking the teacher per batch gives the
    same loss, so the same weights, as logits computed once."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 20, generator=g)
    teacher = nn.Linear(20, 4)
    with torch.no_grad():
        logits = teacher(x)

    def run(distillation):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))
        data = Tensors(x, torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(1)))
        fit(model, data, TrainConfig(epochs=2, lr=1e-2, batch_size=32), seed=0, loss=distillation.loss)
        return [p.detach() for p in model.parameters()]

    live = run(LiveDistillation(teacher, 2.0, 0.7))
    once = run(Distillation(logits, 2.0, 0.7))
    assert all(torch.equal(a, b) for a, b in zip(live, once))


def test_a_live_teacher_sees_the_shifted_digits(teacher_folder, student_data):
    """The folder teacher as a function of raw samples: on a shifted batch it answers for the
    shifted digits, exactly as its precomputed logits of those shifted digits."""
    from eiex.sw.train import random_shifts

    _, raw, _ = student_data
    teacher = teacher_function(str(teacher_folder), sample_shape=raw.shape[1:])
    shifted = random_shifts(torch.from_numpy(raw[:50].astype(np.float32)), (28, 28), 2, torch.Generator().manual_seed(0))
    expected = resolve_teacher(str(teacher_folder), student_x=shifted, raw_images=shifted.numpy(), n_classes=10)
    torch.testing.assert_close(teacher(shifted), expected)
    assert not torch.allclose(teacher(shifted), teacher(torch.from_numpy(raw[:50])))


def test_binarize_on_shifted_digits_asks_the_teacher_every_batch(digits):
    (x, y), (tx, ty) = digits
    data = dataset_from_arrays({"x_train": x, "y_train": y, "x_test": tx, "y_test": ty}, "arrays")
    messages = []
    binarize("bnn-mlp", data, hidden=(32,), threads=1, dropout=(0.0, 0.0),
             binary_schedule=(TrainConfig(epochs=1, lr=1e-2, batch_size=100, shift=2),),
             float_schedule=(TrainConfig(epochs=1, lr=1e-3, batch_size=100),), distill=Distill("float"),
             log=messages.append)
    assert any("on every shifted batch" in m for m in messages)
