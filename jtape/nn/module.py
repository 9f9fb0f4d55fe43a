"""``Parameter``, ``Module`` and ``Sequential``: the containers of a model's trainable tensors.

How a parameter is updated. A ``Parameter`` is a leaf ``Tensor``: no recorded op produces it,
so the tape's gradient map has an entry for its RawTensor and ``loss.backward()`` leaves
∂loss/∂p in ``p.grad``. An optimizer step never writes into the old array, and never runs on
the tape: it computes the new values on raw arrays and **swaps in a new RawTensor**
(``Parameter.assign``). Swapping, rather than mutating ``raw.data``, keeps every RawTensor
immutable — a tape that still holds the old one (``retain_graph=True``, a gradient map being
inspected) keeps seeing the values it recorded — and it works unchanged when the arrays are
jax tracers inside ``jax.jit``. ``assign`` carries ``.grad`` over to the new RawTensor, so
``p.grad`` still reads the last gradient after a step until ``zero_grad()``, as in PyTorch.
The next forward pass reads ``p.raw()``, the new RawTensor, so the next gradient map is keyed by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError, ShapeError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor


def _raw_and_backend(kind: str, data: Tensor | RawTensor, backend: Any) -> tuple[RawTensor, Any]:
    """What ``Parameter(...)`` / ``Buffer(...)`` wrap: a Tensor's RawTensor and backend (``backend``
    overrides it), or a RawTensor with the backend given."""
    if isinstance(data, Tensor):
        return data.raw(), data.backend if backend is None else backend
    if backend is None:
        raise ArgumentError(f"{kind}: got a RawTensor without a backend; expected {kind}(tensor) or "
                            f"{kind}(raw, backend)")
    return data, backend


class Parameter(Tensor):
    """A trainable leaf tensor of a Module. ``Parameter(t)`` wraps a Tensor's RawTensor and backend.

    An optimizer replaces its RawTensor each step with ``assign`` (see the module docstring).
    """

    __slots__ = ()

    def __init__(self, data: Tensor | RawTensor, backend: Any = None):
        raw, backend = _raw_and_backend("Parameter", data, backend)
        if not raw.dtype.is_float:
            raise DTypeError(f"Parameter: got dtype {raw.dtype.value}; expected a float dtype")
        super().__init__(raw, backend)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Buffer(Tensor):
    """Non-trainable state of a Module (a BatchNorm's running mean, a step counter): saved in
    ``state_dict``, carried through ``jtape.jit`` like a Parameter, never given to an optimizer and
    never differentiated. Made by ``Module.register_buffer``; updated by swapping in new values
    with ``assign`` (as a Parameter is), never by writing into the old array."""

    __slots__ = ()

    def __init__(self, data: Tensor | RawTensor, backend: Any = None):
        raw, backend = _raw_and_backend("Buffer", data, backend)
        raw.requires_grad = False
        super().__init__(raw, backend)

    def assign(self, value: Any) -> None:
        """Swap in new values: a RawTensor, or a Tensor (its values, as a constant: no gradient
        reaches a buffer)."""
        if isinstance(value, Tensor):
            value = value.raw()
        super().assign(value)
        self.raw().requires_grad = False

    def __repr__(self) -> str:
        return "Buffer" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models: subclass it, set Parameters and sub-Modules as attributes
    in ``__init__`` and write ``forward``; ``model(x)`` calls ``model.forward(x)``.

    Parameters are found by walking the attributes in the order they were set (the items of lists,
    tuples and dicts held in attributes count too), so ``named_parameters()`` gives names like
    ``"conv1.weight"``, ``"blocks.0.weight"`` or ``"heads.q.weight"``.
    """

    training: bool = True  # a class default, so a subclass need not call super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and not isinstance(args[0], Tensor):  # (a loss's targets, args[1:], may be arrays)
            raise ArgumentError(f"{type(self).__name__}: got a {type(args[0]).__name__} as input; expected a Tensor "
                                f"(make one on the model's backend: tensor.from_numpy(x, backend))")
        if not self.__dict__.get("_jtape_named"):
            self._name_tensors()
        return self.forward(*args, **kwargs)

    def _name_tensors(self) -> None:
        """Label each parameter and buffer with its module path (``fc1.weight``) for tape tables,
        drawings and traces — once, at the first call; a label the user gave is kept (a label a
        sub-module gave itself, the end of this path, is replaced by the full path)."""
        for name, t in (*self.named_parameters(), *self.named_buffers()):
            raw = t.raw()
            if raw.name is None or name.endswith("." + raw.name):
                raw.name = name
        self._jtape_named = True

    # -- the tree of modules and parameters --------------------------------------------------------
    def _members(self) -> Iterator[tuple[str, Any]]:
        """Every value this module holds, by dotted name: each attribute, and the items of lists,
        tuples and dicts held in attributes (``blocks.0``, ``heads.q``, nested as deep as they go).
        Containers (ModuleList, ParameterList, …) override it to name their items ``0``, ``1``, …"""
        for name, value in vars(self).items():
            yield from _held(name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules, by attribute name (``name.i`` for the i-th of a list or tuple
        attribute, ``name.key`` for a dict attribute's)."""
        return ((name, value) for name, value in self._members() if isinstance(value, Module))

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def modules(self) -> Iterator[Module]:
        """This module and every module below it, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every Parameter of this module and its sub-modules, with dotted names; each shared one once.

        A float Tensor with ``requires_grad`` held here that is neither a Parameter nor a Buffer is an
        error (its gradient would be computed and never used): wrap it in ``nn.Parameter``, register
        it as a buffer, or mark it constant with ``requires_grad_(False)``."""
        seen: set[int] = set()
        for name, p in self._walk_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk_parameters(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in self._members():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif _unregistered(value):
                raise ArgumentError(
                    f"{type(self).__name__}.parameters: got a Tensor with requires_grad=True at {prefix + name!r} "
                    f"that is not a Parameter, so no optimizer would see it; expected nn.Parameter(t) for a trainable "
                    f"tensor, self.register_buffer({name.split('.')[0]!r}, t) for state, or "
                    f"t.requires_grad_(False) for a constant")
        for name, child in self.named_children():
            yield from child._walk_parameters(f"{prefix}{name}.")

    def register_buffer(self, name: str, value: Tensor | None) -> Buffer | None:
        """Keep ``value`` as the non-trainable state ``self.<name>`` (a ``Buffer``: in ``state_dict``,
        carried through ``jtape.jit``, not a parameter); returns it."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ArgumentError(f"register_buffer: got name {name!r}; expected a Python identifier")
        if value is not None and not isinstance(value, Tensor):
            raise ArgumentError(f"register_buffer: got a {type(value).__name__} for {name!r}; expected a Tensor "
                                f"(or None)")
        buffer = None if value is None else Buffer(value)
        setattr(self, name, buffer)
        return buffer

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Buffer]]:
        """Every Buffer of this module and its sub-modules, with dotted names; each shared one once."""
        seen: set[int] = set()
        for name, b in self._walk(prefix, Buffer):
            if id(b) not in seen:
                seen.add(id(b))
                yield name, b

    def buffers(self) -> list[Buffer]:
        return [b for _, b in self.named_buffers()]

    def _walk(self, prefix: str, kind: type) -> Iterator[tuple[str, Any]]:
        for name, value in self._members():
            if isinstance(value, kind):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._walk(f"{prefix}{name}.", kind)

    def parameters(self) -> list[Parameter]:
        """The Parameters to hand to an optimizer: ``SGD(model.parameters(), lr=0.1)``."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    # -- dtype and backend ---------------------------------------------------------------------
    def to(self, target: Any) -> Module:
        """``model.to("bfloat16")`` (any float dtype): every floating Parameter and Buffer cast to it —
        integer and bool buffers keep theirs; ``model.to(backend)``: every Parameter and Buffer moved
        to ``backend``. Each tensor object stays (an optimizer made earlier still holds it) and gets
        new values (``Tensor.set_``; its ``.grad`` is dropped); an optimizer's state keeps its old dtype,
        so make the optimizer after ``to``. Returns self."""
        from ..tensor.interop import is_dtype_like, values_on

        if is_dtype_like(target):
            dtype = DataType.of(target)
            if not dtype.is_float:
                raise DTypeError(f"Module.to: got dtype {dtype.value}; expected a float dtype (parameters are float)")
            for t in [*self.parameters(), *self.buffers()]:
                if t.dtype.is_float and t.dtype is not dtype:
                    t.set_(values_on(t, t.backend, dtype))
            return self
        if not callable(getattr(target, "from_numpy", None)):
            raise ArgumentError(f"Module.to: got a {type(target).__name__}; expected a dtype (\"bfloat16\", "
                                f"jtape.tensor.float16) or a Backend")
        for t in [*self.parameters(), *self.buffers()]:
            if t.backend is not target:
                t.set_(values_on(t, target))
        return self

    # -- training mode -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode here and below (Dropout drops only in training mode); returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    # -- saving and loading ------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Each parameter's and each buffer's values as a NumPy array (a copy), by dotted name
        (parameters first, then buffers, as PyTorch lists them)."""
        state = {name: np.array(p.numpy()) for name, p in self.named_parameters()}
        state.update((name, np.array(b.numpy())) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Set each parameter and buffer from ``state`` (name -> array-like), converted to its dtype.

        With ``strict``, missing and unexpected names raise a KeyError. Shapes must match.
        Each tensor gets a new RawTensor (see the module docstring); parameters get no ``.grad``.
        """
        tensors: dict[str, Tensor] = dict(self.named_parameters())
        tensors.update(self.named_buffers())
        missing = [k for k in tensors if k not in state]
        unexpected = [k for k in state if k not in tensors]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing {missing}, unexpected {unexpected}; "
                           f"expected exactly the names {list(tensors)}")
        for name, t in tensors.items():
            if name not in state:
                continue
            arr = np.asarray(state[name])
            if arr.shape != tuple(t.shape):
                raise ShapeError(f"load_state_dict: {name!r} has shape {arr.shape}; expected {tuple(t.shape)}")
            t.zero_grad()
            t.assign(t.backend.from_numpy(arr, t.dtype))

    def save(self, path: Any) -> None:
        """Write ``state_dict()`` to an ``.npz`` file (np.savez: plain arrays, no pickle).

        bfloat16 has no NumPy file format, so it is stored as float32 and cast back on load."""
        state = {k: v.astype(np.float32) if v.dtype.name == "bfloat16" else v for k, v in self.state_dict().items()}
        np.savez(path, **state)

    def load(self, path: Any, strict: bool = True) -> None:
        """Read parameters saved by ``save`` (``np.load(allow_pickle=False)``)."""
        with np.load(path, allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files}, strict=strict)

    # -- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments to show in ``repr`` (layers override it)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ("\n" + "\n".join(lines) + "\n)" if lines else ")")


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Linear(...), ReLU(), Linear(...))``.

    Parameters are named by position: ``"0.weight"``, ``"2.bias"``.
    """

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ArgumentError(f"Sequential: argument {i} is a {type(layer).__name__}; expected a Module")
        self.layers = list(layers)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


def _held(name: str, value: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """``(name, value)``, or for a list, tuple or dict the ``(name.i, item)`` / ``(name.key, item)``
    of its items, recursively (to a depth of 8: deeper nesting is data, not model structure)."""
    if isinstance(value, (list, tuple)) and depth < 8:
        for i, item in enumerate(value):
            yield from _held(f"{name}.{i}", item, depth + 1)
    elif isinstance(value, dict) and depth < 8:
        for key, item in value.items():
            yield from _held(f"{name}.{key}", item, depth + 1)
    else:
        yield name, value


def _unregistered(value: Any) -> bool:
    """A float Tensor that wants a gradient but is neither a Parameter nor a Buffer: held by a module,
    its gradient would be computed and never used. Integer and bool tensors (masks, indices) and
    tensors marked ``requires_grad_(False)`` are ordinary attributes."""
    return (isinstance(value, Tensor) and not isinstance(value, (Parameter, Buffer))
            and value.requires_grad and value.dtype.is_float)
