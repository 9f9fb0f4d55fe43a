"""The op spec table: one ``OpSpec`` per Backend op (in the spirit of PyTorch's OpInfo).

Each spec says, for one op of DESIGN.md's Backend table:
  - ``ref``      an independent reference written here with ``jax.numpy`` / ``jax.lax`` only
                 (this file never imports jtape, so the reference cannot borrow from it);
  - ``samples``  sample inputs: the input shapes and the op's static kwargs;
  - ``dtypes``   the dtypes it is run in;
  - ``grad``     which inputs are differentiable (``()``: the op is not differentiable);
  - ``domain``   how to draw each input's values (positive for log, distinct for argmax, ...);
                 a sample may draw its own (``.values(ties)``: equal values, to pin a tie rule);
  - ``call``     how to call the jtape op, when ``backend.<name>(*tensors, *kwargs.values())``
                 (the seed's positional style) is not it;
  - ``errors``   bad inputs and a fragment of the message jtape must raise for them.

Which samples run in which dtype (to keep JAX's compile time down):
  float32, float64: every sample;  float16, bfloat16: the first ``N_HALF`` samples (``n_half``
  for a spec that needs more, e.g. cross_entropy's three target dtypes);
  int32, int64, uint8, bool: the first ``N_EXACT`` samples.
So each list starts with its most representative samples.

Everything is deterministic: each case draws its values from a NumPy Generator seeded from the
case's id (``rng_for``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from jax import lax

# -- dtypes and tolerances -------------------------------------------------------------------------
FULL = ("float32", "float64")           # run every sample
HALF = ("float16", "bfloat16")          # run the first N_HALF samples
FLOATS = FULL + HALF
INTS = ("int32", "int64", "uint8")      # with BOOL, run the first N_EXACT samples
BOOL = ("bool",)
NUMERIC = FLOATS + INTS
ANY = NUMERIC + BOOL
N_HALF, N_EXACT = 2, 2

# Tolerances relative to the reference's max magnitude; int and bool results must be exact.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


# -- samples and error inputs ----------------------------------------------------------------------
def fmt_shape(shape: tuple) -> str:
    """``(5,)`` -> '(5,)', ``(3, 4)`` -> '(3,4)': compact, for test ids."""
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _fmt_value(v: Any) -> str:
    return fmt_shape(v) if isinstance(v, tuple) else str(v)


@dataclass(frozen=True)
class Sample:
    """One sample input: the shape of each tensor input and the op's static kwargs."""

    shapes: tuple
    kwargs: dict = field(default_factory=dict)
    in_dtypes: tuple = ()   # per-input dtype override (None: the case's dtype), e.g. int64 targets
    grad: bool = True       # False: this sample's output carries no gradient (cast to int)
    domain: Any = None      # this sample's own value generator (overrides the spec's), e.g. ties

    @property
    def id(self) -> str:
        """E.g. '(3,1)x(1,4)', '(3,4)-dim=-1,keep_dim=True', '(6,2)x(6,)int64' (an input's fixed dtype),
        '(2,2,5,7)-kernel_size=3,stride=1-ties' (its own value generator)."""
        fixed = self.in_dtypes + (None,) * len(self.shapes)
        ins = "x".join(fmt_shape(s) + (dt or "") for s, dt in zip(self.shapes, fixed)) or "[]"
        kw = ",".join(f"{k}={_fmt_value(v)}" for k, v in self.kwargs.items())
        base = f"{ins}-{kw}" if kw else ins
        return f"{base}-{self.domain.__name__}" if self.domain else base

    def no_grad(self) -> Sample:
        return replace(self, grad=False)

    def dtypes(self, *in_dtypes: str | None) -> Sample:
        return replace(self, in_dtypes=in_dtypes)

    def values(self, domain: Callable) -> Sample:
        """This sample with its own value generator (for every input)."""
        return replace(self, domain=domain)


def S(*shapes: tuple, **kwargs: Any) -> Sample:
    return Sample(tuple(shapes), kwargs)


@dataclass(frozen=True)
class Err:
    """Inputs the op must reject: tensors of ``shapes`` (zeros of ``dtypes``) and ``kwargs``;
    ``match`` is a literal fragment of the message, ``error`` the jtape error class's name."""

    shapes: tuple
    match: str
    dtypes: tuple | None = None   # None: the spec's in_dtypes, else float32
    kwargs: dict = field(default_factory=dict)
    error: str = "ShapeError"

    @property
    def id(self) -> str:
        return Sample(self.shapes, self.kwargs, self.dtypes or ()).id


def E(*shapes: tuple, match: str, dtypes: tuple | None = None, error: str = "ShapeError", **kwargs: Any) -> Err:
    return Err(tuple(shapes), match, dtypes, kwargs, error)


# -- the spec --------------------------------------------------------------------------------------
def _default_call(name: str) -> Callable:
    """``backend.<name>(*tensors, *static_args)``: positional, as the seed's examples call ops
    (each sample lists its kwargs in the op's signature order)."""
    return lambda backend, tensors, kwargs: getattr(backend, name)(*tensors, *kwargs.values())


@dataclass(frozen=True)
class OpSpec:
    name: str
    ref: Callable                      # ref(*arrays, **kwargs) -> jax array (or list for chunk)
    samples: tuple
    dtypes: tuple
    grad: tuple | str = ()             # indices of differentiable inputs; () = not differentiable;
                                       # "all" = every input (cat takes any number of them)
    domain: Any = None                 # a generator, or one per input (default: normal)
    call: Callable | None = None       # call(backend, tensors, kwargs) -> RawTensor | list
    in_dtypes: tuple = ()              # fixed dtypes of some inputs (bool condition, int index)
    errors: tuple = ()
    n_half: int = N_HALF               # how many samples run in float16/bfloat16

    def run(self, backend: Any, tensors: list, kwargs: dict) -> Any:
        return (self.call or _default_call(self.name))(backend, tensors, kwargs)

    def samples_for(self, dtype: str) -> tuple:
        if dtype in FULL:
            return self.samples
        return self.samples[:self.n_half] if dtype in HALF else self.samples[:N_EXACT]

    def input_dtypes(self, sample: Sample, dtype: str) -> list[str]:
        fixed = sample.in_dtypes or self.in_dtypes
        return [(fixed[i] if i < len(fixed) and fixed[i] else dtype) for i in range(len(sample.shapes))]

    def make_inputs(self, sample: Sample, dtype: str, rng: np.random.Generator) -> list[np.ndarray]:
        """Draw the sample's input arrays (NumPy, in their final dtypes)."""
        domain = sample.domain or self.domain
        gens = domain if isinstance(domain, tuple) else (domain or normal,) * len(sample.shapes)
        out = []
        for gen, shape, dt in zip(gens, sample.shapes, self.input_dtypes(sample, dtype)):
            out.append(np.asarray(gen(rng, shape, dt, sample)).astype(np_dtype(dt)))
        return out


def rng_for(case_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case_id.encode()))


# -- input domains: gen(rng, shape, dtype, sample) -> values (cast to dtype by make_inputs) --------
def normal(rng, shape, dtype, sample=None):
    """Floats ~ N(0, 1); ints in [-5, 5) ([0, 10) for uint8); random bools."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS:
        lo = 0 if dtype == "uint8" else -5
        return rng.integers(lo, lo + 10, shape)
    return rng.standard_normal(shape)


def positive(rng, shape, dtype, sample=None):
    """In [0.5, 2]: log, sqrt and rsqrt stay far from their singularity at 0."""
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape, dtype, sample=None):
    """|x| in [0.5, 2], random sign: a safe denominator, and far from relu's kink."""
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape, dtype, sample=None):
    """A random permutation of 0..n-1 (centred, times 1/4 for floats): no ties, so max-pool
    and argmax have a unique winner. Exact in bfloat16 for n <= 256."""
    n = int(np.prod(shape))
    values = rng.permutation(n).reshape(shape)
    if dtype == "uint8":
        return values
    values = values - n // 2
    return values * 0.25 if dtype in FLOATS else values


def ties(rng, shape, dtype, sample=None):
    """Values from {-1, -0.5, 0, 0.5, 1} ({-2..2} for ints, {0..4} for uint8): every window and
    row holds equal values, so the tie rule shows (max-pool and argmax: the first maximum in
    row-major order, as XLA's select-and-scatter). Exact in every dtype."""
    if dtype in INTS:
        lo = 0 if dtype == "uint8" else -2
        return rng.integers(lo, lo + 5, shape)
    return rng.integers(-2, 3, shape) * 0.5


def small_ints(rng, shape, dtype, sample=None):
    """Values in {-2..2} ({0..4} for uint8): comparisons see many ties."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    lo = 0 if dtype == "uint8" else -2
    return rng.integers(lo, lo + 5, shape)


def bools(rng, shape, dtype, sample=None):
    return rng.random(shape) < 0.5


def cast_values(rng, shape, dtype, sample=None):
    """Non-negative with some exact zeros: every cast (to int, uint8, bool) is well defined."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS:
        return rng.integers(0, 10, shape)
    return rng.uniform(0.0, 9.0, shape) * (rng.random(shape) < 0.8)


def gather_index(rng, shape, dtype, sample):
    """Indices into x along ``dim`` (repeats allowed: gather's gradient must add them up)."""
    x_shape, dim = sample.shapes[0], sample.kwargs["dim"]
    return rng.integers(0, x_shape[dim], shape)


def class_targets(rng, shape, dtype, sample):
    return rng.integers(0, sample.shapes[0][1], shape)


# -- references: pure jax.numpy / jax.lax ----------------------------------------------------------
def ref_softmax(x, dim=-1):
    """(initial=-inf: a softmax over an empty dim is empty, as in PyTorch, not an error.)"""
    e = jnp.exp(x - lax.stop_gradient(jnp.max(x, axis=dim, keepdims=True, initial=-jnp.inf)))
    return e / jnp.sum(e, axis=dim, keepdims=True)


def ref_cross_entropy(logits, targets):
    """mean_b [ logsumexp(logits_b) - logits_b[t_b] ]."""
    m = lax.stop_gradient(jnp.max(logits, axis=1))
    lse = m + jnp.log(jnp.sum(jnp.exp(logits - m[:, None]), axis=1))
    picked = logits[jnp.arange(logits.shape[0]), targets.astype(jnp.int32)]
    return jnp.mean(lse - picked)


def ref_gather(x, index, dim):
    """torch.gather: out[p] = x[p with its dim-coordinate replaced by index[p]]."""
    grid = list(jnp.indices(index.shape, sparse=True))
    grid[dim] = index.astype(jnp.int32)
    return x[tuple(grid)]


def ref_narrow(x, dim, start, length):
    begin = start + x.shape[dim] if start < 0 else start
    return lax.slice_in_dim(x, begin, begin + length, axis=dim)


def ref_sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


def ref_expand(x, shape):
    lead = len(shape) - x.ndim
    target = tuple(x.shape[i - lead] if (d == -1 and i >= lead) else d for i, d in enumerate(shape))
    return jnp.broadcast_to(x, target)


def _keep_dtype(f):
    """A reduction whose result keeps x's dtype (jnp.sum would widen int32/uint8)."""
    return lambda x, **kw: f(x, **kw).astype(x.dtype)


def _scalar(f):
    """x (op) s, with the scalar s converted to x's dtype (wrapping for uint8: -3 -> 253), so the
    result keeps x's dtype."""
    return lambda x, scalar: f(x, jnp.asarray(scalar).astype(x.dtype))


# -- shape families (TESTING.md) -------------------------------------------------------------------
UNARY = (S((3, 4)), S((2, 1, 3)), S(()), S((1,)), S((5,)), S((0,)), S((0, 1, 3)))
BINARY = (
    S((3, 4), (3, 4)), S((3, 1), (1, 4)), S((), (5,)),            # the first ones also run in half/int
    S((5, 1), (5,)), S((3, 4), (1, 4)), S((2, 3, 4), (2, 1, 4)), S((4, 1, 5), (1, 4, 5)),
    S((5,), ()), S((), ()), S((1,), (1,)), S((2, 1, 3), (2, 1, 3)),
    S((0,), (0,)), S((0, 1, 3), (4, 1)),
)
SCALAR = (S((3, 4), scalar=2), S((2, 1, 3), scalar=-3), S((5,), scalar=2.5),   # ints need integral scalars
          S((), scalar=-1.5), S((1,), scalar=0.75), S((0, 1, 3), scalar=2.5))
DIM_REDUCE = (S((3, 4), dim=-1, keep_dim=False), S((4, 4), dim=0, keep_dim=True),   # square: a wrong axis shows
              S((3, 4), dim=0, keep_dim=True), S((3, 3, 3), dim=1, keep_dim=False),
              S((2, 1, 3), dim=1, keep_dim=False), S((2, 3, 4), dim=-2, keep_dim=True),
              S((2, 3, 4), dim=0, keep_dim=False), S((5,), dim=0, keep_dim=False),
              S((5,), dim=-1, keep_dim=True), S((0, 1, 3), dim=-1, keep_dim=False))
# Comparisons and logic share broadcasting with arithmetic; a few samples suffice.
COMPARE = BINARY[:3] + (S((2, 3, 4), (2, 1, 4)), S((0, 1, 3), (4, 1)))


def dim_errors(op: str, *shapes: tuple, insert: bool = False, **kwargs: Any) -> tuple:
    """dim one past each end of the valid range, for a rank-2 first input (``kwargs``: the op's
    static arguments before dim, e.g. chunk's n)."""
    top = 3 if insert else 2
    return (E(*shapes, **kwargs, dim=top,
              match=f"{op}: got dim={top} for a tensor of rank 2; expected {-top} <= dim <= {top - 1}"),
            E(*shapes, **kwargs, dim=-top - 1, match=f"{op}: got dim={-top - 1} for a tensor of rank 2"))


def broadcast_errors(op: str, dtypes: tuple | None = None) -> tuple:
    return (E((3, 4), (5,), dtypes=dtypes, match=f"{op}: got shapes (3, 4) and (5,), which do not broadcast"),
            E((2, 3), (4, 3), dtypes=dtypes,
              match=f"{op}: got shapes (2, 3) and (4, 3), which do not broadcast (dim -2 has sizes [2, 4])"))


def float_only_error(op: str, *shapes: tuple, dtype: str = "int32", **kwargs: Any) -> Err:
    return E(*shapes, dtypes=(dtype,) * len(shapes), error="DTypeError", **kwargs,
             match=f"{op}: got dtype {dtype}; expected a float dtype")


def mixed_dtype_error(op: str, *shapes: tuple, **kwargs: Any) -> Err:
    return E(*shapes, dtypes=("float32", "float64"), error="DTypeError", **kwargs,
             match=f"{op}: got dtypes float32, float64; expected all inputs to have the same dtype")


def arith(name: str, ref: Callable, dtypes: tuple, domain: Any = None, extra_errors: tuple = ()) -> OpSpec:
    return OpSpec(name, ref, BINARY, dtypes, grad=(0, 1), domain=domain,
                  errors=broadcast_errors(name) + (mixed_dtype_error(name, (3,), (3,)),) + extra_errors)


def unary(name: str, ref: Callable, domain: Any = None) -> OpSpec:
    return OpSpec(name, ref, UNARY, FLOATS, grad=(0,), domain=domain,
                  errors=(float_only_error(name, (3,)), float_only_error(name, (3,), dtype="bool")))


def scalar_op(name: str, ref: Callable, dtypes: tuple, extra_errors: tuple = ()) -> OpSpec:
    return OpSpec(name, ref, SCALAR, dtypes, grad=(0,), errors=(
        E((3,), dtypes=("bool",), scalar=1, error="DTypeError", match=f"{name}: got dtype bool"),
        E((3,), scalar="2", error="DTypeError", match=f"{name}: got scalar '2' of type str; expected an int or float"),
    ) + extra_errors)


def compare(name: str, ref: Callable, dtypes: tuple) -> OpSpec:
    errors = broadcast_errors(name) + (mixed_dtype_error(name, (3,), (3,)),)
    if "bool" not in dtypes:
        errors += (E((3,), (3,), dtypes=("bool", "bool"), error="DTypeError",
                     match=f"{name}: got dtype bool; expected a numeric dtype"),)
    return OpSpec(name, ref, COMPARE, dtypes, domain=small_ints, errors=errors)


def logical(name: str, ref: Callable, arity: int = 2) -> OpSpec:
    samples = UNARY if arity == 1 else COMPARE
    shapes = ((3,),) * arity
    errors = (E(*shapes, dtypes=("float32",) * arity, error="DTypeError",
                match=f"{name}: got dtype float32; expected bool"),
              E(*shapes, dtypes=("int32",) * arity, error="DTypeError",
                match=f"{name}: got dtype int32; expected bool"))
    if arity == 2:
        errors += broadcast_errors(name, dtypes=("bool", "bool"))
    return OpSpec(name, ref, samples, BOOL, domain=bools, errors=errors)


# -- the table -------------------------------------------------------------------------------------
SPECS: tuple[OpSpec, ...] = (
    # arithmetic (NumPy broadcasting, same dtype on both sides)
    arith("add", jnp.add, NUMERIC),
    arith("sub", jnp.subtract, NUMERIC),
    arith("mul", jnp.multiply, NUMERIC),
    arith("div", jnp.divide, FLOATS, domain=(normal, away_from_zero), extra_errors=(
        float_only_error("div", (3,), (3,)),)),

    # scalar (the result keeps x's dtype)
    scalar_op("add_scalar", _scalar(jnp.add), NUMERIC, extra_errors=(
        E((3,), dtypes=("int32",), scalar=0.5, error="DTypeError",
          match="add_scalar: got scalar 0.5 for a tensor of dtype int32; expected an integral value"),)),
    scalar_op("sub_scalar", _scalar(jnp.subtract), NUMERIC),
    scalar_op("mul_scalar", _scalar(jnp.multiply), NUMERIC),
    scalar_op("div_scalar", _scalar(jnp.divide), FLOATS, extra_errors=(
        float_only_error("div_scalar", (3,), scalar=2),)),

    # unary math and activations (float only)
    unary("exp", jnp.exp),
    unary("log", jnp.log, domain=positive),
    unary("log1p", jnp.log1p, domain=positive),
    unary("sqrt", jnp.sqrt, domain=positive),
    unary("rsqrt", lambda x: 1 / jnp.sqrt(x), domain=positive),
    unary("sin", jnp.sin),
    unary("cos", jnp.cos),
    unary("relu", lambda x: jnp.where(x > 0, x, jnp.zeros_like(x)), domain=away_from_zero),
    unary("sigmoid", ref_sigmoid),
    unary("tanh", jnp.tanh),
    unary("silu", lambda x: x * ref_sigmoid(x)),
    OpSpec("softmax", ref_softmax, (
        S((3, 4), dim=-1), S((4, 4), dim=0), S((2, 3, 4), dim=-2), S((3, 4), dim=0), S((2, 1, 3), dim=1),
        S((2, 3, 4), dim=0), S((5,), dim=0), S((1,), dim=-1), S((0, 1, 3), dim=-1), S((3, 3, 3), dim=1),
    ), FLOATS, grad=(0,), errors=dim_errors("softmax", (3, 4)) + (
        float_only_error("softmax", (3,), dim=0),
        E((), dim=-1, match="softmax: got dim=-1 for a 0-d tensor; it has no dims"))),

    # linear algebra (2-D and batched, broadcast batch dims)
    OpSpec("matmul", jnp.matmul, (
        S((3, 4), (4, 5)), S((2, 3, 4), (4, 5)), S((2, 1, 3, 4), (5, 4, 2)),
        S((1, 4), (4, 1)), S((4, 3), (2, 3, 5)), S((2, 3, 4), (2, 4, 5)), S((3, 0), (0, 2)), S((0, 4), (4, 3)),
    ), FLOATS, grad=(0, 1), errors=(
        E((3, 4), (5, 6),
          match="matmul: got shapes (3, 4) and (5, 6); expected a.shape[-1] (4) to equal b.shape[-2] (5)"),
        E((4,), (4, 3), match="matmul: got shapes (4,) and (4, 3); expected both of rank >= 2"),
        E((3, 4), (4,), match="matmul: got shapes (3, 4) and (4,); expected both of rank >= 2"),
        E((2, 3, 4), (3, 4, 5), match="matmul: got shapes (2,) and (3,), which do not broadcast"),
        float_only_error("matmul", (3, 4), (4, 5)),
        mixed_dtype_error("matmul", (3, 4), (4, 5)))),

    OpSpec("linear", lambda x, w: jnp.matmul(x, w.T), (
        S((3, 4), (5, 4)), S((2, 3, 4), (5, 4)), S((4,), (5, 4)), S((1, 1), (1, 1)), S((0, 4), (3, 4)),
        S((3, 0), (2, 0)), S((2, 1, 3), (4, 3)),
    ), FLOATS, grad=(0, 1), errors=(
        E((3, 4), (5, 6), match="linear: got x shape (3, 4) and weight shape (5, 6); expected x.shape[-1] (4) to "
                                "equal weight.shape[1] (6)"),
        E((3, 4), (4,), match="linear: got x shape (3, 4) and weight shape (4,); expected x of rank >= 1 and a "
                              "weight [out, in]"),
        float_only_error("linear", (3, 4), (5, 4)),
        mixed_dtype_error("linear", (3, 4), (5, 4)))),

    OpSpec("affine", lambda x, w, b: jnp.matmul(x, w.T) + b, (
        S((3, 4), (5, 4), (5,)), S((2, 3, 4), (5, 4), (5,)), S((4,), (5, 4), (5,)), S((1, 1), (1, 1), (1,)),
        S((0, 4), (3, 4), (3,)), S((3, 0), (2, 0), (2,)), S((2, 1, 3), (4, 3), (4,)),
    ), FLOATS, grad=(0, 1, 2), errors=(
        E((3, 4), (5, 6), (5,), match="affine: got x shape (3, 4) and weight shape (5, 6); expected x.shape[-1] "
                                      "(4) to equal weight.shape[1] (6)"),
        E((3, 4), (4,), (4,), match="affine: got x shape (3, 4) and weight shape (4,); expected x of rank >= 1 "
                                    "and a weight [out, in]"),
        E((3, 4), (5, 4), (4,), match="affine: got bias shape (4,) for weight shape (5, 4); expected a bias "
                                      "[out] = (5,)"),
        E((3, 4), (5, 4), (1, 5), match="affine: got bias shape (1, 5) for weight shape (5, 4)"),
        float_only_error("affine", (3, 4), (5, 4), (5,)),
        E((3, 4), (5, 4), (5,), dtypes=("float32", "float32", "float64"), error="DTypeError",
          match="affine: got dtypes float32, float32, float64; expected all inputs to have the same dtype"))),

    # convolution and pooling (conv2d, max_pool2d, avg_pool2d): their rows are in spec_nn.py

    # loss: mean softmax cross-entropy of logits [B, C] and int targets [B]
    OpSpec("cross_entropy", ref_cross_entropy, (
        S((4, 5), (4,)), S((6, 2), (6,)).dtypes(None, "int64"), S((3, 7), (3,)).dtypes(None, "uint8"),
        S((5, 5), (5,)), S((1, 3), (1,)), S((5, 1), (5,)),
    ), FLOATS, grad=(0,), domain=(normal, class_targets), in_dtypes=(None, "int32"), n_half=3, errors=(
        E((4, 5), (4,), dtypes=("float32", "float32"), error="DTypeError",
          match="cross_entropy: got targets of dtype float32; expected integer class indices"),
        E((4, 5), (4,), dtypes=("int32", "int32"), error="DTypeError",
          match="cross_entropy: got dtype int32; expected a float dtype"),
        E((4,), (4,), match="cross_entropy: got logits shape (4,); expected rank 2 [B, C]"),
        E((4, 5), (4, 1), match="cross_entropy: got targets shape (4, 1); expected rank 1 [B]"),
        E((4, 5), (3,),
          match="cross_entropy: got logits shape (4, 5) and targets shape (3,); expected the same batch size B"),
        E((4, 0), (4,), match="cross_entropy: got logits shape (4, 0); expected at least one class"))),

    # reductions
    OpSpec("sum", _keep_dtype(jnp.sum), UNARY, NUMERIC, grad=(0,), errors=(
        E((3,), dtypes=("bool",), error="DTypeError", match="sum: got dtype bool; expected a numeric dtype"),)),
    OpSpec("sum_dim", _keep_dtype(lambda x, dim, keep_dim: jnp.sum(x, axis=dim, keepdims=keep_dim)),
           DIM_REDUCE, NUMERIC, grad=(0,), errors=dim_errors("sum_dim", (3, 4)) + (
               E((3, 4), dim=0, keep_dim=1, match="sum_dim: got keep_dim=1; expected True or False"),
               E((3,), dim=0, dtypes=("bool",), error="DTypeError", match="sum_dim: got dtype bool"))),
    OpSpec("mean_dim", lambda x, dim, keep_dim: jnp.mean(x, axis=dim, keepdims=keep_dim),
           DIM_REDUCE, FLOATS, grad=(0,), errors=dim_errors("mean_dim", (3, 4)) + (
               float_only_error("mean_dim", (3, 4), dim=0),)),

    # shape ops (any dtype)
    OpSpec("reshape", lambda x, shape: jnp.reshape(x, shape), (
        S((3, 4), shape=(4, 3)), S((2, 1, 3), shape=(3, -1)), S((3, 4), shape=(12,)), S((), shape=(1, 1)),
        S((5,), shape=(5, 1)), S((1,), shape=()), S((0, 1, 3), shape=(3, 0)),
    ), ANY, grad=(0,), errors=(
        E((3, 4), shape=(5,),
          match="reshape: cannot reshape (3, 4) (size 12) to (5,) (size 5); expected the same number of elements"),
        E((3, 4), shape=(-1, -1),
          match="reshape: got target shape (-1, -1); expected non-negative sizes and at most one -1"),
        E((3, 4), shape=(5, -1),
          match="reshape: cannot reshape (3, 4) (size 12) to (5, -1); the -1 cannot be inferred"))),
    OpSpec("transpose", lambda x, axes: jnp.transpose(x, axes or None), (
        S((3, 4), axes=()), S((2, 3, 4), axes=(-1, 0, -2)), S((2, 1, 3), axes=(2, 0, 1)), S((3, 4), axes=(1, 0)),
        S((), axes=()), S((5,), axes=(0,)), S((0, 1, 3), axes=(1, 2, 0)),
    ), ANY, grad=(0,), call=lambda b, xs, kw: b.transpose(xs[0], *kw["axes"]), errors=(
        E((3, 4), axes=(0, 2), match="transpose: got dim=2 for a tensor of rank 2; expected -2 <= dim <= 1"),
        E((3, 4), axes=(-3, 0), match="transpose: got dim=-3 for a tensor of rank 2"),
        E((3, 4), axes=(0, 0), match="transpose: got axes (0, 0); expected a permutation of range(2)"),
        E((3, 4), axes=(0,), match="transpose: got axes (0,) for a tensor of rank 2"))),
    OpSpec("squeeze", lambda x, dim: jnp.squeeze(x, dim), (
        S((2, 1, 3), dim=1), S((3, 1), dim=-1), S((2, 1, 3), dim=-2), S((1,), dim=0), S((0, 1, 3), dim=1),
    ), ANY, grad=(0,), errors=dim_errors("squeeze", (3, 1)) + (
        E((3, 4), dim=0, match="squeeze: got shape (3, 4) and dim=0 of size 3; expected a dim of size 1"),)),
    OpSpec("unsqueeze", lambda x, dim: jnp.expand_dims(x, dim), (
        S((3, 4), dim=0), S((3, 4), dim=-1), S((3, 4), dim=2), S((3, 4), dim=-3), S((2, 1, 3), dim=1),
        S((), dim=0), S((0, 3), dim=1),
    ), ANY, grad=(0,), errors=dim_errors("unsqueeze", (3, 4), insert=True)),
    OpSpec("expand", ref_expand, (
        S((3, 1), shape=(3, 4)), S((1, 4), shape=(2, 3, 4)), S((), shape=(5,)), S((5,), shape=(2, 5)),
        S((2, 1, 3), shape=(2, 4, 3)), S((3, 1), shape=(-1, 4)), S((1,), shape=(0,)), S((2, 3), shape=(2, 3)),
    ), ANY, grad=(0,), errors=(
        E((3, 4), shape=(3, 5),
          match="expand: cannot expand shape (3, 4) to (3, 5): dim 1 has size 4; expected size 1 or 5"),
        E((3, 4), shape=(4,), match="expand: cannot expand shape (3, 4) to (4,); expected a target of rank >= 2"),
        E((3, 1), shape=(-1, 3, 1), match="expand: got target (-1, 3, 1); -1 is only allowed for existing dims"))),
    OpSpec("cat", lambda *xs, dim: jnp.concatenate(xs, axis=dim), (
        S((3, 4), (2, 4), dim=0), S((3, 4), (3, 1), (3, 2), dim=-1), S((2, 1, 3), (2, 2, 3), dim=1),
        S((5,), (5,), dim=0), S((0, 3), (2, 3), dim=-2), S((3, 4), dim=1), S((2, 3, 1), (2, 3, 2), dim=-1),
    ), ANY, grad="all", call=lambda b, xs, kw: b.cat(list(xs), kw["dim"]), errors=dim_errors("cat", (3, 4), (3, 4)) + (
        E((3, 4), (3, 5), dim=0,
          match="cat: tensor 1 has shape (3, 5), tensor 0 has shape (3, 4); expected equal shapes except along dim 0"),
        E((3, 4), (3, 4, 1), dim=0, match="cat: tensor 1 has shape (3, 4, 1), tensor 0 has shape (3, 4)"),
        E(dim=0, match="cat: got no tensors; expected at least one"),
        mixed_dtype_error("cat", (3, 4), (3, 4), dim=0))),
    OpSpec("chunk", lambda x, n, dim: jnp.split(x, n, axis=dim), (
        S((6, 4), n=3, dim=0), S((3, 4), n=2, dim=-1), S((2, 6, 3), n=2, dim=1), S((5,), n=1, dim=0),
        S((4,), n=4, dim=-1), S((2, 1, 3), n=1, dim=1), S((0, 4), n=2, dim=-1),
    ), ANY, grad=(0,), errors=dim_errors("chunk", (4, 4), n=2) + (
        E((5,), n=2, dim=0,
          match="chunk: cannot split dim 0 of size 5 (shape (5,)) into 2 equal chunks; expected n to divide 5"),
        E((4,), n=0, dim=0, match="chunk: got n=0; expected a positive int"))),
    OpSpec("narrow", ref_narrow, (
        S((5, 4), dim=0, start=1, length=3), S((3, 6), dim=-1, start=-4, length=2), S((2, 3, 4), dim=1, start=0, length=0),
        S((4,), dim=0, start=0, length=4), S((2, 1, 3), dim=2, start=2, length=1), S((0, 3), dim=1, start=1, length=2),
    ), ANY, grad=(0,), call=lambda b, xs, kw: b.narrow(xs[0], **kw),
        errors=dim_errors("narrow", (3, 4), start=0, length=1) + (
        E((3, 4), dim=1, start=2, length=3,
          match="narrow: got start=2, length=3 for dim 1 of size 4 (shape (3, 4)); expected 0 <= start <= start + "
                "length <= 4"),
        E((3, 4), dim=0, start=-4, length=1, match="narrow: got start=-4, length=1 for dim 0 of size 3"),
        E((3, 4), dim=0, start=0, length=-1, match="narrow: got start=0, length=-1"),
        E((3, 4), dim=0, start=0.5, length=1, match="narrow: got start=0.5; expected an int"))),

    # indexing
    OpSpec("gather", ref_gather, (
        S((3, 4), (3, 2), dim=1), S((3, 4), (5, 4), dim=0),
        S((3, 4), (2, 6), dim=-1).dtypes(None, "int64"),          # index smaller in the other dim
        S((2, 3, 4), (2, 5, 4), dim=-2).dtypes(None, "uint8"), S((5,), (7,), dim=0), S((2, 3, 4), (1, 2, 2), dim=2),
    ), ANY, grad=(0,), domain=(normal, gather_index), in_dtypes=(None, "int32"),
        call=lambda b, xs, kw: b.gather(xs[0], kw["dim"], xs[1]), errors=dim_errors("gather", (3, 4), (3, 4)) + (
        E((3, 4), (3, 4), dim=0, dtypes=("float32", "float32"), error="DTypeError",
          match="gather: got index of dtype float32; expected an integer dtype"),
        E((3, 4), (3,), dim=0, match="gather: got x shape (3, 4) and index shape (3,); expected the same rank"),
        E((3, 4), (3, 5), dim=0,
          match="gather: got x shape (3, 4) and index shape (3, 5); expected index.shape[1] <= x.shape[1]"))),
    OpSpec("where", jnp.where, (
        S((3, 4), (3, 4), (3, 4)), S((3, 1), (1, 4), (3, 4)), S((), (5,), (5,)),
        S((2, 1, 4), (3, 1), (1,)), S((5,), (5,), ()), S((0, 3), (0, 3), (1, 3)),
    ), ANY, grad=(1, 2), domain=(bools, normal, normal), in_dtypes=("bool", None, None), errors=(
        E((3,), (3,), (3,), dtypes=("float32", "float32", "float32"), error="DTypeError",
          match="where: got condition of dtype float32; expected bool"),
        E((3,), (3,), (3,), dtypes=("int32", "float32", "float32"), error="DTypeError",
          match="where: got condition of dtype int32"),
        E((3,), (3,), (3,), dtypes=("bool", "float32", "float64"), error="DTypeError",
          match="where: got dtypes float32, float64"),
        E((3, 4), (5,), (3, 4), dtypes=("bool", "float32", "float32"),
          match="where: got shapes (3, 4) and (5,) and (3, 4), which do not broadcast"))),

    # comparisons and logic (bool results, not differentiable)
    compare("equal", jnp.equal, ANY),
    compare("not_equal", jnp.not_equal, ANY),
    compare("greater", jnp.greater, NUMERIC),
    compare("greater_equal", jnp.greater_equal, NUMERIC),
    compare("lower", jnp.less, NUMERIC),
    compare("lower_equal", jnp.less_equal, NUMERIC),
    logical("and_", jnp.logical_and),
    logical("or_", jnp.logical_or),
    logical("not_", jnp.logical_not, arity=1),

    # other
    OpSpec("argmax", lambda x, dim: jnp.argmax(x, axis=dim).astype(jnp.int32), (
        S((3, 4), dim=-1), S((4, 4), dim=0).values(ties), S((2, 3, 4), dim=-2), S((3, 4), dim=0), S((2, 1, 3), dim=1),
        S((5,), dim=0), S((0, 3), dim=1), S((3, 3), dim=1), S((2, 5, 3), dim=1).values(ties),
    ), NUMERIC, domain=distinct, errors=dim_errors("argmax", (3, 4)) + (
        E((0, 3), dim=0, match="argmax: got shape (0, 3) with dim 0 of size 0; expected a non-empty dim"),
        E((3,), dim=0, dtypes=("bool",), error="DTypeError", match="argmax: got dtype bool"))),
    OpSpec("cast", lambda x, dtype: x.astype(dtype), (
        S((3, 4), dtype="float32"), S((2, 1, 3), dtype="float64"), S((5,), dtype="float16"),
        S((3, 4), dtype="bfloat16"), S((0, 3), dtype="float32"),
        S((3, 4), dtype="int32").no_grad(), S((5,), dtype="int64").no_grad(),
        S((2, 1, 3), dtype="uint8").no_grad(), S((3, 4), dtype="bool").no_grad(),
    ), ANY, grad=(0,), domain=cast_values, errors=(
        E((3,), dtype="complex64", error="DTypeError", match="dtype: got 'complex64'; expected one of float32"),)),
)

# The ops added in the second round live in their own spec modules (one per family), so each
# family's rows sit beside its helpers; they import the building blocks above.
from spec_elementwise import SPECS as _ELEMENTWISE  # noqa: E402
from spec_indexing import SPECS as _INDEXING  # noqa: E402
from spec_nn import SPECS as _NN  # noqa: E402
from spec_shape import SPECS as _SHAPE  # noqa: E402

SPECS = SPECS + _ELEMENTWISE + _SHAPE + _INDEXING + _NN
SPEC_BY_NAME: dict[str, OpSpec] = {s.name: s for s in SPECS}


def grad_indices(spec: OpSpec, sample: Sample) -> tuple[int, ...]:
    """The indices of the sample's differentiable inputs."""
    return tuple(range(len(sample.shapes))) if spec.grad == "all" else spec.grad
