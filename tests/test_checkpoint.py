"""``jtape.save`` / ``jtape.load``: train 10 steps, save, load into fresh objects, train 10 more — bitwise
the same as 20 straight steps, eagerly and under ``jtape.jit``; the file is plain safetensors; what
does not fit is named."""

import json

import jax
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import jtape
from jtape import autodiff, checkpoint, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ArgumentError, ShapeError


def make(seed=0, backend=None, defer=True):
    """A fresh model and optimizer: Adam (moments), two parameter groups, the head's lr lower."""
    backend = backend or autodiff.new(JaxBackend("cpu"), defer=defer)
    model = nn.Sequential(nn.Linear(6, 16, backend, seed=seed), nn.Tanh(), nn.Linear(16, 3, backend, seed=seed + 1))
    opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.003}], lr=0.01)
    return backend, model, opt


def batch(backend, k):
    rng = np.random.default_rng(1000 + k)
    x = tensor.from_numpy(rng.standard_normal((32, 6)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 32).astype(np.int32), backend)
    return x, y


def train(backend, model, opt, first, last, compiled):
    def step(x, y):
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    step = jtape.jit(step, state=[model, opt]) if compiled else step
    for k in range(first, last):
        if k == 14:
            opt.param_groups[0]["lr"] = 0.005   # a change after the resume: it must land the same way
        step(*batch(backend, k))


# eager: op by op, each run on its own backend (as a new process would be); deferred: the default eager
# mode, where the first run of a step's structure on a backend goes op by op and later runs reuse its
# compiled program, so the fresh objects share the backend (and its compiled program) to be bitwise
# equal; compiled: jtape.jit, each run on its own backend.
MODES = {"eager": (False, False, False), "deferred": (True, True, False), "compiled": (True, False, True)}


@pytest.mark.parametrize("mode", list(MODES))
def test_resume_is_bitwise_equal_to_a_straight_run(tmp_path, mode):
    defer, share, compiled = MODES[mode]
    backend, straight, straight_opt = make(defer=defer)
    train(backend, straight, straight_opt, 0, 20, compiled)

    backend, model, opt = make(defer=defer)
    train(backend, model, opt, 0, 10, compiled)
    key = jax.random.key(7)
    jtape.save({"model": model, "optimizer": opt, "step": 10, "rng": key, "config": {"hidden": 16}},
               tmp_path / "ck.safetensors")

    backend, fresh, fresh_opt = make(seed=5, backend=backend if share else None, defer=defer)   # other values
    assert not np.array_equal(fresh[0].weight.numpy(), model[0].weight.numpy())
    ck = jtape.load(tmp_path / "ck.safetensors", into={"model": fresh, "optimizer": fresh_opt})
    assert ck["step"] == 10 and ck["config"] == {"hidden": 16} and fresh_opt.steps == 10
    assert np.array_equal(jax.random.key_data(ck["rng"]), jax.random.key_data(key))
    train(backend, fresh, fresh_opt, 10, 20, compiled)
    for (name, a), b in zip(straight.named_parameters(), fresh.parameters()):
        assert np.array_equal(a.numpy(), b.numpy()), name
    assert fresh_opt.steps == straight_opt.steps == 20


def test_the_file_is_plain_safetensors(tmp_path):
    backend, model, opt = make()
    train(backend, model, opt, 0, 2, False)
    path = tmp_path / "ck.safetensors"
    jtape.save({"model": model, "optimizer": opt, "step": 2, "note": "two steps"}, path)
    tensors = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(tensors["model/0.weight"], model[0].weight.numpy())
    assert tensors["optimizer/state/1/inner_state/hyperparams/learning_rate"].dtype == np.float32
    assert tensors["optimizer/state/0/inner_state/inner_state/0/mu/0"].shape == (16, 6)
    with safetensors.safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["jtape"])
    assert header["tree"]["step"] == 2 and header["tree"]["note"] == "two steps"
    assert header["tree"]["optimizer"]["steps"] == 2
    assert header["tree"]["model"]["0.weight"] == {"__jtape_tensor__": "model/0.weight"}


def test_bfloat16_and_plain_values_round_trip(tmp_path):
    backend = autodiff.new(JaxBackend("cpu"))
    layer = nn.Linear(3, 2, backend, seed=0)
    w = tensor.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3) / 7, backend, "bfloat16")
    data = {"w": w, "array": np.arange(4, dtype=np.int64), "scalar": np.float32(2.5), "old_key": jax.random.PRNGKey(3),
            "nested": {"list": [1, 2.5, None, True, "s"], "layer": layer}}
    jtape.save(data, tmp_path / "x.safetensors")
    back = jtape.load(tmp_path / "x.safetensors")
    assert back["w"].dtype.name == "bfloat16" and np.array_equal(back["w"], w.numpy())
    assert back["array"].dtype == np.int64 and back["scalar"].shape == () and back["scalar"] == np.float32(2.5)
    np.testing.assert_array_equal(back["old_key"], jax.random.PRNGKey(3))
    assert back["nested"]["list"] == [1, 2.5, None, True, "s"]
    np.testing.assert_array_equal(back["nested"]["layer"]["weight"], layer.weight.numpy())


def test_a_foreign_safetensors_file_loads_as_its_tensors(tmp_path):
    safetensors.numpy.save_file({"weight": np.ones((2, 2), np.float32)}, str(tmp_path / "f.safetensors"))
    back = jtape.load(tmp_path / "f.safetensors")
    assert list(back) == ["weight"] and back["weight"].shape == (2, 2)


def test_loading_what_does_not_fit_names_it(tmp_path):
    backend, model, opt = make()
    path = tmp_path / "ck.safetensors"
    jtape.save({"model": model, "optimizer": opt}, path)
    wider = nn.Sequential(nn.Linear(6, 8, backend, seed=0), nn.Tanh(), nn.Linear(8, 3, backend, seed=1))
    with pytest.raises(ShapeError, match=r"'0.weight' has shape \(16, 6\); expected \(8, 6\)"):
        jtape.load(path, into={"model": wider})
    deeper = nn.Sequential(nn.Linear(6, 16, backend, seed=0), nn.Tanh(), nn.Linear(16, 3, backend, seed=1),
                           nn.Linear(3, 3, backend, seed=2))
    with pytest.raises(KeyError, match=r"missing \['3.weight', '3.bias'\]"):
        jtape.load(path, into={"model": deeper})
    with pytest.raises(KeyError, match="missing"):
        jtape.load(path, into={"optimizer": optim.Adam(deeper.parameters())})
    with pytest.raises(KeyError, match=r"into= names 'opt'; the checkpoint holds \['model', 'optimizer'\]"):
        jtape.load(path, into={"opt": opt})
    with pytest.raises(ArgumentError, match=r"into\['model'\] is a int; expected an object with load_state_dict"):
        jtape.load(path, into={"model": 3})


def test_saving_what_has_no_file_form_says_so(tmp_path):
    with pytest.raises(ArgumentError, match=r"'config/fn' is a builtin_function_or_method; expected a Module, Optimizer, Tensor"):
        jtape.save({"config": {"fn": len}}, tmp_path / "x.safetensors")
    with pytest.raises(ArgumentError, match="has the key 3; expected string keys"):
        jtape.save({"a": {3: 1}}, tmp_path / "x.safetensors")
    with pytest.raises(ArgumentError, match=r"two arrays are both named 'a/b'"):
        jtape.save({"a/b": np.ones(1), "a": {"b": np.ones(1)}}, tmp_path / "x.safetensors")
    with pytest.raises(ArgumentError, match="got a list; expected a dict"):
        jtape.save([1], tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())   # nothing half-written


def test_the_process_default_key_goes_through_jtape_random(monkeypatch):
    class FakeRandom:   # the two functions of jtape.random that checkpoints use
        key = jax.random.PRNGKey(1)

        @classmethod
        def get_key(cls):
            return cls.key

        @classmethod
        def set_key(cls, key):
            cls.key = key

    monkeypatch.setattr(jtape, "random", FakeRandom, raising=False)
    saved = checkpoint.default_key()
    checkpoint.set_default_key(np.asarray(jax.random.PRNGKey(9)))
    assert np.array_equal(FakeRandom.key, jax.random.PRNGKey(9)) and np.array_equal(saved, jax.random.PRNGKey(1))
    monkeypatch.setattr(jtape, "random", object())
    with pytest.raises(ArgumentError, match="got no jtape.random.get_key"):
        checkpoint.default_key()


def test_a_numpy_backend_model_round_trips(tmp_path):
    from jtape.backends import NumpyBackend

    def make_np(seed):
        backend = autodiff.new(NumpyBackend())
        model = nn.Sequential(nn.Linear(3, 4, backend, seed=seed), nn.Tanh(), nn.Linear(4, 1, backend, seed=seed + 1))
        return backend, model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def steps(backend, model, opt, first, last):
        for k in range(first, last):
            rng = np.random.default_rng(k)
            x = tensor.from_numpy(rng.standard_normal((8, 3)).astype(np.float32), backend, requires_grad=False)
            loss = nn.MSELoss()(model(x), rng.standard_normal((8, 1)).astype(np.float32))
            loss.backward()
            opt.step()
            opt.zero_grad()

    backend, straight, straight_opt = make_np(0)
    steps(backend, straight, straight_opt, 0, 6)
    backend, model, opt = make_np(0)
    steps(backend, model, opt, 0, 3)
    jtape.save({"model": model, "optimizer": opt}, tmp_path / "np.safetensors")
    backend, fresh, fresh_opt = make_np(3)
    jtape.load(tmp_path / "np.safetensors", into={"model": fresh, "optimizer": fresh_opt})
    steps(backend, fresh, fresh_opt, 3, 6)
    for a, b in zip(straight.parameters(), fresh.parameters()):
        assert isinstance(b.data, np.ndarray) and np.array_equal(a.numpy(), b.numpy())
