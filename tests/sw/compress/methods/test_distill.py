"""Distillation: the loss against a numpy hand computation, its limits, gradients, the teacher's logits."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from eiex.errors import EiexError
from eiex.sw.compress.methods.distill import Distillation, distillation_loss, teacher_logits


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_loss(student, teacher, labels, t, alpha):
    p = softmax(teacher / t)
    q = softmax(student / t)
    kl = np.sum(p * (np.log(p) - np.log(q))) / len(student)
    ce = -np.mean(np.log(softmax(student)[np.arange(len(student)), labels]))
    return alpha * t**2 * kl + (1 - alpha) * ce


STUDENT = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
TEACHER = np.array([[0.5, 3.0, -1.0], [0.0, 0.2, 2.5]])
LABELS = np.array([1, 2])


@pytest.mark.parametrize("t, alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0), (20.0, 0.3)])
def test_loss_against_hand_computation(t, alpha):
    got = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), t, alpha)
    assert float(got) == pytest.approx(numpy_loss(STUDENT, TEACHER, LABELS, t, alpha), rel=1e-10)


def test_alpha_zero_is_cross_entropy_and_equal_logits_leave_no_soft_term():
    student, labels = torch.tensor(STUDENT), torch.tensor(LABELS)
    ce = F.cross_entropy(student, labels)
    assert torch.allclose(distillation_loss(student, torch.tensor(TEACHER), labels, 3.0, 0.0), ce)
    assert float(distillation_loss(student, student.clone(), labels, 3.0, 1.0)) == pytest.approx(0, abs=1e-12)


def test_gradient_flows_to_the_student_only():
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    distillation_loss(student, teacher, torch.tensor(LABELS), 4.0, 0.7).backward()
    assert student.grad is not None and torch.all(torch.isfinite(student.grad)) and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_distillation_picks_the_batch_rows():
    logits = torch.tensor(np.concatenate([TEACHER, TEACHER[::-1] * 2]), dtype=torch.float32)
    d = Distillation(logits=logits, temperature=3.0, alpha=0.6)
    index = torch.tensor([3, 0])
    student = torch.tensor(STUDENT, dtype=torch.float32)
    labels = torch.tensor(LABELS)
    expected = distillation_loss(student, logits[index], labels, 3.0, 0.6)
    assert torch.equal(d.loss(student, labels, index), expected)


def test_teacher_logits_in_eval_mode_and_the_modes_restored():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.5), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model.train()
    model[3].eval()  # a mixed model keeps its mix
    x = torch.randn(23, 5)
    logits = teacher_logits(model, x, batch=7)
    assert logits.shape == (23, 3) and logits.dtype == torch.float32 and not logits.requires_grad
    with torch.no_grad():
        model.eval()
        expected = model(x)
    model.train()
    model[3].eval()
    torch.testing.assert_close(logits, expected)
    teacher_logits(model, x)
    assert [m.training for m in model] == [True, True, True, False] and model.training


def test_teacher_logits_refuse_non_finite_outputs_and_restore_the_mode():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    model.train()
    with pytest.raises(EiexError, match="teacher logits contain NaN or infinite values"):
        teacher_logits(model, torch.ones(4, 2))
    assert model.training


@pytest.mark.parametrize("call, message", [
    (lambda: distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), 0.0, 0.5),
     "distillation temperature must be a finite positive number, not 0.0"),
    (lambda: distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), 1.0, 1.5),
     r"distillation alpha must lie in \[0, 1\], not 1.5"),
    (lambda: distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64), 1.0, 0.5),
     r"student logits \(2, 3\) and teacher logits \(2, 4\) differ in shape"),
    (lambda: distillation_loss(torch.zeros(6), torch.zeros(6), torch.zeros(6, dtype=torch.int64), 1.0, 0.5),
     r"student logits must be a 2-D \(batch, classes\) floating-point tensor"),
    (lambda: distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64), 1.0, 0.5),
     "labels must be a 1-D integer tensor of 2 class indices"),
    (lambda: Distillation(torch.tensor([[0.0, float("nan")]]), 2.0, 0.5), "teacher logits contain NaN or infinite"),
    (lambda: Distillation(torch.zeros(4), 2.0, 0.5), r"teacher logits must be a 2-D \(samples, classes\)"),
    (lambda: Distillation(torch.zeros(4, 2), -1.0, 0.5), "distillation temperature must be a finite positive number"),
    (lambda: Distillation(torch.zeros(4, 2), 2.0, -0.1), r"distillation alpha must lie in \[0, 1\], not -0.1"),
    (lambda: teacher_logits(torch.nn.Linear(2, 2), torch.ones(3, 2), batch=0),
     "teacher batch size must be a positive integer, not 0"),
    (lambda: teacher_logits(torch.nn.Linear(2, 2), torch.ones(0, 2)), "teacher inputs must be a non-empty tensor"),
])
def test_bad_input(call, message):
    with pytest.raises(EiexError, match=message):
        call()
