"""ModuleList, ModuleDict, ParameterList; parameters found in lists, tuples and dicts of a module (and
the error for a tensor that wants a gradient but is not registered); the new activation layers and
Flatten against plain jnp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import nn, tensor
from jtape.tensor.errors import ArgumentError

from .reference import compare, randn


def lin(backend, i, o, seed=0):
    return nn.Linear(i, o, backend, seed=seed)


def names(module):
    return [n for n, _ in module.named_parameters()]


def test_module_list(backend):
    layers = nn.ModuleList([lin(backend, 2, 3), lin(backend, 3, 3, 1)])
    layers.append(lin(backend, 3, 1, 2))
    assert len(layers) == 3 and names(layers)[:2] == ["0.weight", "0.bias"] and names(layers)[-1] == "2.bias"
    layers.insert(1, nn.ReLU())
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "Linear"]
    assert names(layers) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]   # renumbered
    assert isinstance(layers[-1], nn.Linear) and len(layers[1:3]) == 2 and isinstance(layers[1:3], nn.ModuleList)
    layers.extend([nn.Tanh()])
    layers[4] = nn.Sigmoid()
    del layers[1]
    assert [type(m).__name__ for m in layers] == ["Linear", "Linear", "Linear", "Sigmoid"]

    class Net(nn.Module):
        def __init__(self):
            self.layers = layers

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    net = Net()
    assert names(net)[0] == "layers.0.weight" and len(net.parameters()) == 6
    out = net(tensor.ones((4, 2), backend))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert "(layers): ModuleList(" in repr(net) and "(0): Linear(" in repr(net)
    net.eval()
    assert not layers[3].training
    with pytest.raises(ArgumentError, match="ModuleList.append: got a int; expected a Module"):
        layers.append(3)
    with pytest.raises(IndexError, match="got index 9; expected -4 <= index < 4"):
        layers[9]
    with pytest.raises(ArgumentError, match="ModuleList.extend: got a Linear; expected an iterable of Modules"):
        layers.extend(lin(backend, 1, 1))


def test_module_dict(backend):
    heads = nn.ModuleDict({"q": lin(backend, 4, 4), "k": lin(backend, 4, 4, 1)})
    heads["v"] = lin(backend, 4, 2, 2)
    assert list(heads) == ["q", "k", "v"] and "k" in heads and len(heads) == 3
    assert names(heads) == ["q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias"]
    heads.update([("o", nn.ReLU())])
    assert heads.keys() == ["q", "k", "v", "o"] and isinstance(heads.values()[3], nn.ReLU)
    del heads["o"]
    assert [k for k, _ in heads.items()] == ["q", "k", "v"]
    with pytest.raises(KeyError, match="got key 'x'; expected one of"):
        heads["x"]
    with pytest.raises(ArgumentError, match="got key 'a.b'"):
        heads["a.b"] = nn.ReLU()
    with pytest.raises(ArgumentError, match=r"ModuleDict\['z'\]: got a str; expected a Module"):
        heads["z"] = "no"


def test_parameter_list(backend):
    params = nn.ParameterList([tensor.ones((2,), backend), nn.Parameter(tensor.zeros((3,), backend))])
    params.append(tensor.ones((1,), backend))
    assert all(isinstance(p, nn.Parameter) for p in params) and len(params) == 3
    assert names(params) == ["0", "1", "2"]
    params.insert(0, tensor.zeros((4,), backend))
    assert [tuple(p.shape) for p in params] == [(4,), (2,), (3,), (1,)]

    class Scales(nn.Module):
        def __init__(self):
            self.scales = params

    assert names(Scales()) == ["scales.0", "scales.1", "scales.2", "scales.3"]
    with pytest.raises(ArgumentError, match="ParameterList.append: got a list; expected a Parameter"):
        params.append([1.0])


def test_parameters_in_plain_lists_tuples_and_dicts(backend):
    class Net(nn.Module):
        def __init__(self):
            self.blocks = [lin(backend, 2, 2), (lin(backend, 2, 2, 1), nn.ReLU())]
            self.heads = {"q": lin(backend, 2, 1, 2), "scale": nn.Parameter(tensor.ones((1,), backend))}
            self.extra = (nn.Parameter(tensor.zeros((2,), backend)),)
            self.mask = tensor.from_numpy(np.tril(np.ones((2, 2), bool)), backend)   # bool: not a parameter
            self.fixed = tensor.ones((2,), backend).requires_grad_(False)           # a constant: not one either
            self.sizes = [2, 2]

    net = Net()
    assert names(net) == ["heads.scale", "extra.0", "blocks.0.weight", "blocks.0.bias", "blocks.1.0.weight",
                          "blocks.1.0.bias", "heads.q.weight", "heads.q.bias"]
    assert [n for n, _ in net.named_children()] == ["blocks.0", "blocks.1.0", "blocks.1.1", "heads.q"]
    state = net.state_dict()
    assert "heads.q.weight" in state and "blocks.1.0.bias" in state
    net.load_state_dict(state)


def test_an_unregistered_tensor_that_wants_a_gradient_is_an_error(backend):
    class Net(nn.Module):
        def __init__(self):
            self.linear = lin(backend, 2, 2)
            self.scale = tensor.ones((2,), backend)   # forgot nn.Parameter

    with pytest.raises(ArgumentError, match=r"Net.parameters: got a Tensor with requires_grad=True at 'scale' that "
                                            r"is not a Parameter.*expected nn.Parameter\(t\).*register_buffer\('scale'"):
        Net().parameters()

    class Deep(nn.Module):
        def __init__(self):
            self.inner = nn.Sequential(Net())

    with pytest.raises(ArgumentError, match="at 'inner.0.scale'"):
        list(Deep().named_parameters())

    class InList(nn.Module):
        def __init__(self):
            self.weights = [tensor.ones((2,), backend), tensor.ones((2,), backend)]

    with pytest.raises(ArgumentError, match=r"at 'weights.0'.*register_buffer\('weights'"):
        InList().parameters()


def test_new_activations(backend):
    for dtype in ("float32", "float64"):
        x = [randn(3, 7) * 4]
        compare(nn.GELU(), lambda p, x: jax.nn.gelu(x, approximate=False), x, backend, dtype)
        compare(nn.GELU("tanh"), lambda p, x: jax.nn.gelu(x, approximate=True), x, backend, dtype)
        compare(nn.LeakyReLU(0.2), lambda p, x: jnp.where(x >= 0, x, 0.2 * x), x, backend, dtype)
        compare(nn.ELU(0.7), lambda p, x: jnp.where(x > 0, x, 0.7 * jnp.expm1(x)), x, backend, dtype)
        compare(nn.Softplus(), lambda p, x: jnp.where(x > 20, x, jnp.log1p(jnp.exp(x))), x, backend, dtype)
        compare(nn.Identity(54, unused=1), lambda p, x: x, x, backend, dtype)
    big = [np.array([-30.0, -1.0, 0.5, 9.0, 10.5, 40.0])]   # beyond the threshold Softplus is x itself, as torch
    compare(nn.Softplus(beta=2.0, threshold=20.0),
            lambda p, x: jnp.where(2 * x > 20, x, jnp.log1p(jnp.exp(2 * x)) / 2), big, backend, "float64")
    with pytest.raises(ArgumentError, match="approximate='fast'"):
        nn.GELU("fast")
    with pytest.raises(ArgumentError, match="beta=0"):
        nn.Softplus(beta=0)
    with pytest.raises(ArgumentError, match="negative_slope='a'"):
        nn.LeakyReLU("a")


@pytest.mark.parametrize("start,end,shape", [(1, -1, (2, 3, 4, 5)), (0, 1, (2, 3, 4)), (1, 2, (2, 3, 4, 5)),
                                             (-2, -1, (2, 3, 4))])
def test_flatten(backend, start, end, shape):
    def ref(p, x):
        s, e = start % x.ndim, end % x.ndim
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])
    compare(nn.Flatten(start, end), ref, [randn(*shape)], backend, "float64")
