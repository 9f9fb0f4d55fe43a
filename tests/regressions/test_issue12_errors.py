"""Issue 12, items 11 and 12: raw exceptions and misleading messages. Every bad call raises a jtape
error (never a raw Python/NumPy/JAX one) whose message names what went wrong, with the same
message on NumpyBackend and JaxBackend."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import DTypeError, JtapeError, ShapeError

INNERS = {"jax": lambda: JaxBackend("cpu"), "numpy": NumpyBackend}


def _t(backend, array, **kw):
    return tensor.from_numpy(np.asarray(array), backend, **kw)


def _ints(backend):
    return _t(backend, np.array([1, 2, 3], np.int32))


def _floats(backend):
    return _t(backend, np.array([1.0, 2.0, 3.0]))


def _image(backend):
    return _t(backend, np.ones((1, 1, 4, 4))), _t(backend, np.ones((1, 1, 3, 3)))


def _wrong_grad_then_backward(b):
    x = _floats(b)
    x.grad = _t(b, np.ones(2))
    (x * x).sum().backward()


def _set_grad_to_ndarray(b):
    _floats(b).grad = np.ones(3)


# name -> (call on a fresh AutodiffBackend, jtape error class, message fragment (a regex))
CASES: dict[str, tuple[Callable[[Any], Any], type, str]] = {
    # 11: raw exceptions
    "int + inf": (lambda b: _ints(b) + float("inf"), DTypeError, r"add_scalar: got scalar inf for a tensor of dtype int32"),
    "int + nan": (lambda b: _ints(b) + float("nan"), DTypeError, r"add_scalar: got scalar nan for a tensor of dtype int32"),
    "int * 1e30": (lambda b: _ints(b) * 1e30, JtapeError, r"mul_scalar: got scalar 1e\+30 for a tensor of dtype int32"),
    "backward(ndarray)": (lambda b: (_floats(b) * 2).sum().backward(np.ones(())), JtapeError, r"backward.*ndarray"),
    ".grad = ndarray": (_set_grad_to_ndarray, JtapeError, r"grad.*ndarray"),
    "conv2d padding=(True, 0)": (lambda b: _image(b)[0].conv2d(_image(b)[1], 1, (True, 0)), ShapeError,
                                 r"conv2d: got padding=\(True, 0\); expected an int or a pair of ints"),
    "conv2d stride=(True, 1)": (lambda b: _image(b)[0].conv2d(_image(b)[1], (True, 1), 0), ShapeError,
                                r"conv2d: got stride=\(True, 1\); expected an int or a pair of ints"),
    "max_pool2d kernel_size=(True, 2)": (lambda b: _image(b)[0].max_pool2d((True, 2)), ShapeError,
                                         r"max_pool2d: got kernel_size=\(True, 2\); expected an int or a pair of ints"),
    "max_pool2d stride=(2, True)": (lambda b: _image(b)[0].max_pool2d(2, (2, True)), ShapeError,
                                    r"max_pool2d: got stride=\(2, True\); expected an int or a pair of ints"),
    "model(ndarray)": (lambda b: nn.Linear(3, 2, b, seed=0)(np.ones((2, 3), np.float32)), JtapeError,
                       r"(?s)ndarray.*Tensor"),
    "model(list)": (lambda b: nn.Linear(3, 2, b, seed=0)([[1.0, 2.0, 3.0]]), JtapeError, r"(?s)list.*Tensor"),
    # 12: misleading messages
    "autodiff.backward(int tensor), empty tape": (lambda b: autodiff.backward(_ints(b), b), DTypeError,
                                                  r"backward: got a tensor of dtype int32; expected a float tensor"),
    "int_tensor.mean()": (lambda b: _ints(b).mean(), DTypeError, r"^mean: got dtype int32"),
    "preset .grad of the wrong shape": (_wrong_grad_then_backward, ShapeError, r"(?s)grad.*\(2,\).*\(3,\)"),
}


def _message(name: str, inner_name: str) -> str:
    call, error, match = CASES[name]
    backend = autodiff.new(INNERS[inner_name]())
    with pytest.raises(error, match=match) as info:
        call(backend)
    return str(info.value)


def _normalized(message: str) -> str:
    """Backend names and array types removed: what is left must be the same on both backends."""
    return re.sub(r"Autodiff\((jax|numpy)\)|JaxBackend|NumpyBackend|ArrayImpl|ndarray|\bjax\b|\bnumpy\b", "·", message)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_call_raises_a_clear_jtape_error_on_both_backends(name):
    messages = {inner: _message(name, inner) for inner in INNERS}
    assert len({_normalized(m) for m in messages.values()}) == 1, f"the backends disagree: {messages}"


def test_a_misleading_add_message_does_not_blame_add():
    """The preset .grad of the wrong shape must be named as such, not reported as an add."""
    assert not _message("preset .grad of the wrong shape", "numpy").startswith("add:")


def test_int_mean_does_not_blame_div_scalar():
    assert "div_scalar" not in _message("int_tensor.mean()", "numpy")


# -- NumPy integers: accepted wherever a Python int is, or rejected everywhere with one message ---------------
def _sites(b) -> dict[str, Callable[[Callable], Any]]:
    x = _t(b, np.arange(24.0).reshape(2, 3, 4))
    img, k = _t(b, np.ones((1, 1, 6, 6))), _t(b, np.ones((1, 1, 3, 3)))
    idx = _t(b, np.zeros((2, 3, 2), np.int32), requires_grad=False)
    return {
        "Tensor.reshape(n)": lambda i: x.reshape(i(24)),
        "Tensor.reshape(a, b)": lambda i: x.reshape(i(6), i(4)),
        "backend.reshape(t, (a, b))": lambda i: tensor.Tensor(b.reshape(x.raw(), (i(4), i(6))), b),
        "Tensor.expand": lambda i: x.sum_dim(0, True).expand(i(5), i(3), i(4)),
        "Tensor.transpose": lambda i: x.transpose(i(2), i(0), i(1)),
        "Tensor.squeeze": lambda i: x.unsqueeze(1).squeeze(i(1)),
        "Tensor.unsqueeze": lambda i: x.unsqueeze(i(1)),
        "Tensor.sum_dim": lambda i: x.sum_dim(i(1)),
        "Tensor.mean_dim": lambda i: x.mean_dim(i(-1)),
        "Tensor.softmax": lambda i: x.softmax(i(1)),
        "Tensor.argmax": lambda i: x.argmax(i(2)),
        "Tensor.chunk": lambda i: x.chunk(i(2), i(2)),
        "tensor.cat": lambda i: tensor.cat([x, x], i(1)),
        "Tensor.gather": lambda i: x.gather(i(2), idx),
        "conv2d(stride, padding)": lambda i: img.conv2d(k, i(2), i(1)),
        "conv2d((sh, sw), (ph, pw))": lambda i: img.conv2d(k, (i(1), i(2)), (i(0), i(1))),
        "max_pool2d(k, s)": lambda i: img.max_pool2d(i(2), i(1)),
        "max_pool2d((kh, kw), (sh, sw))": lambda i: img.max_pool2d((i(2), i(3)), (i(1), i(2))),
    }


def _outcome(fn: Callable) -> tuple[str, Any]:
    try:
        out = fn()
    except JtapeError as e:
        return "rejected", str(e)
    except Exception as e:  # noqa: BLE001 — any raw error is recorded, and fails the test below
        return "raw", f"{type(e).__name__}: {e}"
    return "accepted", [np.asarray(o.numpy()) for o in (out if isinstance(out, list) else [out])]


@pytest.mark.parametrize("inner_name", sorted(INNERS))
@pytest.mark.parametrize("numpy_int", [np.int32, np.int64], ids=["int32", "int64"])
def test_numpy_integers_are_treated_alike_everywhere(inner_name, numpy_int):
    backend = autodiff.new(INNERS[inner_name]())
    outcomes = {}
    for site, call in _sites(backend).items():
        expected = _outcome(functools.partial(call, int))
        assert expected[0] == "accepted", f"{site} rejects Python ints: {expected[1]}"
        kind, value = _outcome(functools.partial(call, numpy_int))
        if kind == "accepted":
            for got, want in zip(value, expected[1], strict=True):
                np.testing.assert_array_equal(got, want, err_msg=site)
        outcomes[site] = (kind, value)
    kinds = {kind for kind, _ in outcomes.values()}
    assert "raw" not in kinds, {s: v for s, (k, v) in outcomes.items() if k == "raw"}
    assert len(kinds) == 1, ("NumPy integers are accepted by "
                             f"{sorted(s for s, (k, _) in outcomes.items() if k == 'accepted')} but rejected by "
                             f"{ {s: v for s, (k, v) in outcomes.items() if k == 'rejected'} }")
    if kinds == {"rejected"}:
        for site, (_, message) in outcomes.items():
            assert re.search(r"(?i)numpy|np\.int", message), f"{site}: {message}"


# -- jtape.jit: host reads inside the step, and a step that updates parameters it was not given ------------------
def _jit_setup():
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Linear(3, 2, backend, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = _t(backend, np.ones((4, 3), np.float32))
    return backend, model, opt, x


@pytest.mark.parametrize("read", ["item", "float"])
def test_item_inside_jtape_jit_raises_a_jtape_error(read):
    _, model, opt, x = _jit_setup()

    def step(x):
        loss = model(x).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.item() if read == "item" else float(loss)

    with pytest.raises(JtapeError, match=r"item"):
        jtape.jit(step, state=[model, opt])(x)
    assert all(isinstance(p.data, jax.Array) and not isinstance(p.data, jax.core.Tracer) for p in model.parameters())


def test_jtape_jit_without_state_for_a_step_that_updates_parameters_raises():
    _, model, opt, x = _jit_setup()
    before = [p.numpy().copy() for p in model.parameters()]

    def step(x):
        loss = model(x).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    with pytest.raises(JtapeError, match=r"state"):
        jtape.jit(step)(x)
    for p, b in zip(model.parameters(), before):
        assert not isinstance(p.data, jax.core.Tracer), "a parameter was left holding a tracer"
        np.testing.assert_array_equal(p.numpy(), b)


# -- anomaly mode: blame the right place, and leave the standard masking pattern alone ---------------------------
@pytest.mark.parametrize("inner_name", sorted(INNERS))
def test_anomaly_mode_names_a_leaf_that_already_holds_nan(inner_name):
    backend = autodiff.new(INNERS[inner_name]())
    x = _t(backend, [np.nan, 1.0])
    with pytest.raises(autodiff.AnomalyError, match=r"(?i)\bleaf\b|input 0") as info, autodiff.detect_anomaly():
        (x * 2).sum().backward()
    assert not re.search(r"Op produced NaN", str(info.value)), f"blames the op: {info.value}"


@pytest.mark.parametrize("inner_name", sorted(INNERS))
def test_anomaly_mode_accepts_masking_with_minus_inf(inner_name):
    """softmax(where(mask, x, -inf)): the standard attention mask; its gradient is finite."""
    backend = autodiff.new(INNERS[inner_name]())
    rng = np.random.default_rng(0)
    xs, mask = rng.standard_normal((2, 4)), np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)
    x = _t(backend, xs)
    with autodiff.detect_anomaly():
        neg = tensor.full((2, 4), float("-inf"), backend, "float64")
        p = x.where(_t(backend, mask, requires_grad=False), neg).softmax(-1)
        (p * p).sum().backward()
    want = jax.grad(lambda v: jnp.sum(jax.nn.softmax(jnp.where(mask, v, -jnp.inf), -1) ** 2))(xs)
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(want), rtol=1e-12, atol=1e-15)
