"""Randomness as state (``jtape.random``): keys, generators, seeded creation, initialisers drawn
with ``jax.nn.initializers`` (PyTorch's fans), layers' keys and Dropout's masks — and no host
NumPy RNG anywhere in the library."""

import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend, NumpyBackend

init = nn.init


@pytest.fixture
def default_jax():
    """A JaxBackend AutodiffBackend as the process default for one test (the previous one restored)."""
    b = autodiff.new(JaxBackend("cpu"))
    previous = jtape.set_default_backend(b)
    yield b
    if previous is not None:
        jtape.set_default_backend(previous)


def test_key_sources():
    k = jax.random.PRNGKey(7)
    assert jtape.random.key(key=k) is k
    np.testing.assert_array_equal(jtape.random.key(seed=3), jax.random.PRNGKey(3))
    jtape.random.seed(11)
    held, fresh = jax.random.split(jax.random.PRNGKey(11))
    np.testing.assert_array_equal(jtape.random.key(), fresh)              # the next split of the default
    np.testing.assert_array_equal(jtape.random.get_key(), held)           # which moved on
    assert not np.array_equal(jtape.random.key(), fresh)                 # and the next key is new
    typed = jax.random.key(5)                                              # typed keys are keys too
    assert jtape.random.key(key=typed) is typed


@pytest.mark.parametrize("call, message", [
    (lambda: jtape.random.key(seed=1, key=jax.random.PRNGKey(1)), "expected at most one of seed= and key="),
    (lambda: jtape.random.key(seed=-1), "got seed=-1; expected a non-negative int"),
    (lambda: jtape.random.key(seed=1.5), "got seed=1.5; expected a non-negative int"),
    (lambda: jtape.random.key(key=np.zeros(3, np.uint32)), r"got a key of type ndarray \(shape \(3,\).*expected a jax"),
    (lambda: jtape.random.set_key("abc"), "got a key of type str; expected a jax.random key"),
    (lambda: jtape.random.seed(True), "got seed=True; expected a non-negative int"),
])
def test_bad_keys_and_seeds(call, message):
    with pytest.raises(tensor.ArgumentError, match=message):
        call()


def test_generator_streams_and_default():
    g = jtape.random.Generator(seed=2)
    k = jax.random.PRNGKey(2)
    for _ in range(3):
        k, fresh = jax.random.split(k)
        np.testing.assert_array_equal(g.next_key(), fresh)
    np.testing.assert_array_equal(g.key, k)
    g.seed(2)
    np.testing.assert_array_equal(g.key, jax.random.PRNGKey(2))
    assert jtape.random.default_generator() is jtape.random.default_generator()
    jtape.random.set_key(jax.random.PRNGKey(9))
    np.testing.assert_array_equal(jtape.random.get_key(), jax.random.PRNGKey(9))
    with pytest.raises(tensor.ArgumentError, match="at most one of them"):
        jtape.random.Generator(1, key=jax.random.PRNGKey(1))


@pytest.mark.parametrize("kind", ["randn", "rand"])
def test_creation_draws_with_jax_the_same_on_every_backend(kind):
    draw = jax.random.normal if kind == "randn" else jax.random.uniform
    make = getattr(tensor, kind)
    expected = np.asarray(draw(jax.random.PRNGKey(4), (3, 5), np.float32))
    on_jax = make((3, 5), autodiff.new(JaxBackend("cpu")), seed=4).numpy()
    on_numpy = make((3, 5), autodiff.new(NumpyBackend()), key=jax.random.PRNGKey(4)).numpy()
    np.testing.assert_array_equal(on_jax, expected)
    np.testing.assert_array_equal(on_numpy, expected)
    f64 = make((2,), NumpyBackend(), seed=4, dtype="float64")
    assert f64.dtype is tensor.float64
    with pytest.raises(tensor.DTypeError, match=f"{kind}: got dtype int32; expected a float dtype"):
        make((2,), NumpyBackend(), seed=0, dtype="int32")


def test_creation_without_seed_follows_the_process_default(default_jax):
    jtape.random.seed(0)
    a = [tensor.randn((4,)).numpy(), tensor.rand((4,)).numpy()]
    jtape.random.seed(0)
    b = [tensor.randn((4,)).numpy(), tensor.rand((4,)).numpy()]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], tensor.randn((4,)).numpy())
    assert tensor.randn((2,)).backend is default_jax


CONV = (64, 16, 3, 3)             # fan_in = 16·9 = 144, fan_out = 64·9 = 576 (PyTorch's convention)


@pytest.mark.parametrize("name, variance", [
    ("xavier_uniform", 2 / (144 + 576)), ("xavier_normal", 2 / (144 + 576)),
    ("kaiming_uniform", 2 / 144), ("kaiming_normal", 2 / 144),
])
def test_initialiser_variance_with_pytorch_fans(name, variance):
    values = getattr(init, name)(CONV, NumpyBackend(), seed=0).numpy().astype(np.float64)
    assert values.var() == pytest.approx(variance, rel=0.03)
    assert abs(values.mean()) < 0.05 * math.sqrt(variance)
    if name.endswith("normal"):    # a plain normal, not jax's default truncated one: tails past 2σ exist
        assert np.abs(values).max() > 3 * math.sqrt(variance)
    fan_out = init.kaiming_normal(CONV, NumpyBackend(), mode="fan_out", seed=1).numpy()
    assert fan_out.var() == pytest.approx(2 / 576, rel=0.03)


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                                  "uniform", "normal"])
def test_initialisers_same_values_on_numpy_and_jax(name):
    k = jax.random.PRNGKey(3)
    a = getattr(init, name)((5, 4, 3), JaxBackend("cpu"), key=k).numpy()
    b = getattr(init, name)((5, 4, 3), NumpyBackend(), key=k).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, getattr(init, name)((5, 4, 3), NumpyBackend(), seed=3).numpy())


def test_layers_take_pytorch_order_backend_keyword_and_keys(default_jax):
    k = jax.random.PRNGKey(1)
    by_key = nn.Linear(3, 4, key=k)
    assert by_key.weight.backend is default_jax and tuple(by_key.weight.shape) == (4, 3)
    np.testing.assert_array_equal(by_key.weight.numpy(), init.xavier_uniform((4, 3), key=k).numpy())
    positional = nn.Linear(3, 4, NumpyBackend(), seed=1)        # the backend as third argument still works
    np.testing.assert_array_equal(positional.weight.numpy(), by_key.weight.numpy())
    conv = nn.Conv2D(2, 5, 3, backend=NumpyBackend(), key=k, weight_init=init.kaiming_normal)
    np.testing.assert_array_equal(conv.weight.numpy(), init.kaiming_normal((5, 2, 3, 3), key=k).numpy())
    jtape.random.seed(0)
    first = [nn.Linear(3, 4).weight.numpy(), nn.Conv2D(1, 2, 3).weight.numpy()]
    jtape.random.seed(0)
    again = [nn.Linear(3, 4).weight.numpy(), nn.Conv2D(1, 2, 3).weight.numpy()]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], nn.Linear(3, 4).weight.numpy())   # the stream moved on


def test_a_seed_only_initialiser_still_gets_its_seed():
    got = []

    def ones_init(shape, backend, *, seed=None, dtype="float32"):
        got.append(seed)
        return tensor.ones(shape, backend, dtype)

    layer = nn.Linear(2, 3, NumpyBackend(), seed=8, weight_init=ones_init)
    assert got == [8] and layer.weight.numpy().sum() == 6


@pytest.mark.parametrize("inner", [JaxBackend("cpu"), NumpyBackend()], ids=["jax", "numpy"])
def test_dropout_mask_is_jax_bernoulli_of_the_next_key(inner):
    b = autodiff.new(inner)
    k = jax.random.PRNGKey(5)
    drop = nn.Dropout(0.25, key=k)
    x = tensor.ones((6, 7), b)
    held = k
    for _ in range(2):                        # each call: the next key of the layer's own generator
        held, fresh = jax.random.split(held)
        keep = np.asarray(jax.random.bernoulli(fresh, 0.75, (6, 7)))
        np.testing.assert_allclose(drop(x).numpy(), np.where(keep, 1 / 0.75, 0.0), rtol=1e-6)


def test_dropout_without_seed_follows_the_process_default(default_jax):
    x = tensor.ones((8, 8))
    drop = nn.Dropout(0.5)
    assert drop.generator is None
    jtape.random.seed(3)
    a = drop(x).numpy()
    jtape.random.seed(3)
    np.testing.assert_array_equal(drop(x).numpy(), a)
    assert not np.array_equal(drop(x).numpy(), a)


def test_no_host_numpy_rng_in_the_library():
    root = Path(jtape.__file__).parent
    pattern = re.compile(r"np\.random|numpy\.random|default_rng|RandomState|^\s*import random\b|^\s*from random ",
                         re.MULTILINE)
    found = [f"{p.relative_to(root)}: {m.group(0).strip()}" for p in sorted(root.rglob("*.py"))
             for m in pattern.finditer(p.read_text())]
    assert found == []


def test_generators_copy_and_pickle_with_their_key():
    import copy
    import pickle

    for g in (jtape.random.Generator(3), jtape.random.Generator(key=jax.random.key(3)), jtape.random.Generator()):
        g.key  # noqa: B018 — make the key (an unseeded one from entropy)
        twins = (pickle.loads(pickle.dumps(g)), copy.deepcopy(g))
        expected = jax.random.key_data(g.next_key())
        for twin in twins:
            np.testing.assert_array_equal(jax.random.key_data(twin.next_key()), expected)
    assert repr(jtape.random.Generator(1)).startswith("Generator(key=[")


def test_threads_never_share_a_key():
    from concurrent.futures import ThreadPoolExecutor

    g = jtape.random.Generator(0)
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda _: tuple(np.asarray(g.next_key()).tolist()), range(64)))
    assert len(set(keys)) == 64
