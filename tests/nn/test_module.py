"""Parameter, Module, Sequential: the parameter tree, train/eval, state_dict and .npz round trips."""

import numpy as np
import pytest

from jtape import autodiff, nn, tensor
from jtape.tensor.errors import DTypeError, ShapeError


class TwoLayer(nn.Module):
    def __init__(self, backend, seed=0):
        self.hidden = nn.Linear(3, 4, backend, seed=seed)
        self.blocks = [nn.ReLU(), nn.Linear(4, 2, backend, seed=seed + 1)]
        self.scale = nn.Parameter(tensor.ones((1,), backend))
        self.note = "not a parameter"

    def forward(self, x):
        h = self.hidden(x)
        for block in self.blocks:
            h = block(h)
        return h * self.scale


def test_parameter_is_a_leaf_tensor_with_grad(backend):
    p = nn.Parameter(tensor.from_slice([2.0, 3.0], (2,), backend))
    assert isinstance(p, tensor.Tensor) and p.backend is backend
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [4.0, 6.0])
    assert repr(p).startswith("Parameter([")
    same = nn.Parameter(p.raw(), backend)
    assert same.raw() is p.raw()


def test_parameter_assign_swaps_raw_and_keeps_grad(backend):
    p = nn.Parameter(tensor.from_slice([1.0, 2.0], (2,), backend))
    (p * p).sum().backward()
    old = p.raw()
    new = backend.from_numpy(np.array([5.0, 6.0]), "float32")
    p.assign(new)
    assert p.raw() is new and old.grad is new.grad
    np.testing.assert_allclose(p.grad.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(backend.to_numpy(old), [1.0, 2.0])  # the old RawTensor is untouched
    with pytest.raises(ShapeError, match=r"Parameter.assign: got shape \(3,\); expected \(2,\)"):
        p.assign(backend.full((3,), 0.0, "float32"))
    with pytest.raises(DTypeError, match="Parameter.assign: got dtype float64; expected float32"):
        p.assign(backend.full((2,), 0.0, "float64"))


def test_parameter_rejects_ints_and_missing_backend(backend):
    with pytest.raises(DTypeError, match="expected a float dtype"):
        nn.Parameter(tensor.from_numpy(np.array([1, 2], np.int32), backend))
    with pytest.raises(TypeError, match="without a backend"):
        nn.Parameter(backend.full((1,), 0.0, "float32"))


def test_named_parameters_walk_attributes_in_order(backend):
    model = TwoLayer(backend)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "hidden.weight", "hidden.bias", "blocks.1.weight", "blocks.1.bias"]
    assert model.parameters() == [p for _, p in model.named_parameters()]
    assert [type(m).__name__ for m in model.modules()] == ["TwoLayer", "Linear", "ReLU", "Linear"]
    assert [name for name, _ in model.named_children()] == ["hidden", "blocks.0", "blocks.1"]


def test_shared_parameters_are_listed_once(backend):
    layer = nn.Linear(2, 2, backend, seed=0)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_gradients_reach_every_parameter(backend):
    model = TwoLayer(backend)
    x = tensor.randn((5, 3), backend, seed=1)
    model(x).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and tuple(p.grad.shape) == tuple(p.shape), name
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_and_eval_propagate(backend):
    model = TwoLayer(backend)
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_sequential_container(backend):
    model = nn.Sequential(nn.Linear(3, 4, backend, seed=0), nn.ReLU(), nn.Linear(4, 2, backend, seed=1))
    assert len(model) == 3 and isinstance(model[1], nn.ReLU) and list(model)[2] is model[2]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = tensor.randn((2, 3), backend, seed=0)
    np.testing.assert_allclose(model(x).numpy(), model[2](model[1](model[0](x))).numpy())
    assert "(1): ReLU()" in repr(model) and "Linear(in_features=3, out_features=4, bias=True)" in repr(model)
    with pytest.raises(TypeError, match="argument 1 is a int; expected a Module"):
        nn.Sequential(nn.ReLU(), 3)


def test_module_forward_must_be_written(backend):
    with pytest.raises(NotImplementedError, match=r"^Module\.forward$"):
        nn.Module()(tensor.ones((1,), backend))


def test_state_dict_round_trip_through_npz(backend, tmp_path):
    model = TwoLayer(backend, seed=0)
    other = TwoLayer(backend, seed=7)
    x = tensor.randn((4, 3), backend, seed=2)
    assert not np.allclose(model(x).numpy(), other(x).numpy())
    state = model.state_dict()
    assert list(state) == [n for n, _ in model.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model.save(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:  # plain arrays, no pickle
        assert sorted(f.files) == sorted(state)
    other.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())
    for p in other.parameters():
        assert p.dtype is tensor.float32 and p.grad is None


def test_state_dict_is_a_copy(backend):
    model = nn.Linear(2, 2, backend, seed=0)
    state = model.state_dict()
    state["weight"][...] = 0
    assert np.any(model.weight.numpy() != 0)


def test_load_state_dict_errors_and_non_strict(backend):
    model = nn.Linear(2, 3, backend, seed=0)
    with pytest.raises(KeyError, match=r"missing \['bias'\], unexpected \['extra'\]"):
        model.load_state_dict({"weight": np.zeros((3, 2)), "extra": np.zeros(1)})
    with pytest.raises(ShapeError, match=r"'weight' has shape \(2, 3\); expected \(3, 2\)"):
        model.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(3)})
    bias = model.bias.numpy()
    model.load_state_dict({"weight": np.ones((3, 2))}, strict=False)
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((3, 2)))
    np.testing.assert_array_equal(model.bias.numpy(), bias)


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_save_load_keeps_dtype(backend, tmp_path, dtype):
    model = nn.Linear(3, 2, backend, seed=0, dtype=dtype)
    model.save(tmp_path / "w.npz")
    other = nn.Linear(3, 2, backend, seed=1, dtype=dtype)
    other.load(tmp_path / "w.npz")
    for a, b in zip(model.parameters(), other.parameters()):
        assert b.dtype.value == dtype
        np.testing.assert_array_equal(a.numpy().astype(np.float64), b.numpy().astype(np.float64))


def test_inference_on_a_plain_backend(inner):
    # Modules also run on a backend with no tape (nothing is recorded anywhere).
    model = nn.Sequential(nn.Linear(3, 2, inner, seed=0), nn.Sigmoid())
    out = model(tensor.ones((1, 3), inner))
    assert tuple(out.shape) == (1, 2)


def test_forward_records_only_ordinary_ops(backend):
    model = nn.Sequential(nn.Linear(3, 2, backend, seed=0), nn.ReLU())
    model(tensor.ones((4, 3), backend))
    assert [op.name for op in backend.tape().operations()] == ["Affine", "ReLU"]      # Linear: one op, x @ Wᵀ + b
    backend.tape().clear()
    with autodiff.no_grad():
        model(tensor.ones((4, 3), backend))
    assert backend.tape().num_ops() == 0
