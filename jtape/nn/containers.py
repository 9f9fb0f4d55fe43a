"""Containers: ``ModuleList``, ``ModuleDict`` and ``ParameterList``.

A model's parameters are found by walking its modules (``Module._members``); a container names
its items by position (``"0"``, ``"1"``, …) or by key, so a ``ModuleList`` held as ``self.layers``
gives parameter names like ``"layers.0.weight"``, as in PyTorch. Containers have no ``forward``:
the model that holds one decides how its items are called.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..tensor.errors import ArgumentError
from ..tensor.tensor import Tensor
from .module import Module, Parameter


def _index(name: str, i: Any, n: int, *, insert: bool = False) -> int:
    """``i`` as a position in ``range(n)`` (``range(n + 1)`` for insert; negatives count from the end)."""
    if not isinstance(i, int) or isinstance(i, bool):
        raise ArgumentError(f"{name}: got index {i!r} ({type(i).__name__}); expected an int")
    size = n + 1 if insert else n
    j = i + n if i < 0 else i
    if insert:
        return min(max(j, 0), n)  # list.insert clamps, and so does this
    if not 0 <= j < size:
        raise IndexError(f"{name}: got index {i}; expected -{n} <= index < {n}")
    return j


class ModuleList(Module):
    """A list of Modules, registered so their parameters are found (``"0.weight"``, ``"1.bias"``, …).

        self.blocks = nn.ModuleList([Block() for _ in range(4)])
        for block in self.blocks:
            x = block(x)
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        self._items: list[Module] = []
        if modules is not None:
            self.extend(modules)

    def _members(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self._items))

    @staticmethod
    def _check(module: Any, where: str) -> Module:
        if not isinstance(module, Module):
            raise ArgumentError(f"ModuleList.{where}: got a {type(module).__name__}; expected a Module")
        return module

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns self."""
        self._items.append(self._check(module, "append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add each of ``modules`` at the end; returns self."""
        if isinstance(modules, Module) or not isinstance(modules, Iterable):
            raise ArgumentError(f"ModuleList.extend: got a {type(modules).__name__}; expected an iterable of Modules")
        self._items.extend(self._check(m, "extend") for m in list(modules))
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (the items after it are renumbered)."""
        self._items.insert(_index("ModuleList.insert", index, len(self._items), insert=True),
                           self._check(module, "insert"))

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return ModuleList(self._items[i])
        return self._items[_index("ModuleList", i, len(self._items))]

    def __setitem__(self, i: int, module: Module) -> None:
        self._items[_index("ModuleList", i, len(self._items))] = self._check(module, "__setitem__")

    def __delitem__(self, i: int) -> None:
        del self._items[_index("ModuleList", i, len(self._items))]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._items))


class ModuleDict(Module):
    """Modules by string key, in insertion order (``"q.weight"``, ``"k.weight"``, …).

    ```python
    self.heads = nn.ModuleDict({"q": nn.Linear(8, 8), "k": nn.Linear(8, 8)})
    q = self.heads["q"](x)
    ```
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        self._items: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _members(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._items.items()))

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise ArgumentError(f"ModuleDict: got key {key!r}; expected a non-empty string without '.' "
                                f"(keys become parts of parameter names)")
        if not isinstance(module, Module):
            raise ArgumentError(f"ModuleDict[{key!r}]: got a {type(module).__name__}; expected a Module")
        self._items[key] = module

    def __getitem__(self, key: str) -> Module:
        if key not in self._items:
            raise KeyError(f"ModuleDict: got key {key!r}; expected one of {list(self._items)}")
        return self._items[key]

    def __delitem__(self, key: str) -> None:
        self.__getitem__(key)  # the KeyError that names the known keys
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def keys(self) -> list[str]:
        return list(self._items)

    def values(self) -> list[Module]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._items.items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add (or replace) each ``key: module`` of a mapping or of an iterable of pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ArgumentError(f"ModuleDict.update: got {pair!r}; expected (key, module) pairs or a mapping")
            self[pair[0]] = pair[1]


class ParameterList(Module):
    """A list of Parameters, registered so ``parameters()`` finds them (named ``"0"``, ``"1"``, …).

    A float Tensor that is not yet a Parameter is wrapped in one (as PyTorch's ParameterList does).
    """

    def __init__(self, parameters: Iterable[Tensor] | None = None):
        self._items: list[Parameter] = []
        if parameters is not None:
            self.extend(parameters)

    def _members(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), p) for i, p in enumerate(self._items))

    @staticmethod
    def _check(value: Any, where: str) -> Parameter:
        if not isinstance(value, Tensor):
            raise ArgumentError(f"ParameterList.{where}: got a {type(value).__name__}; expected a Parameter "
                                f"(or a float Tensor)")
        return value if isinstance(value, Parameter) else Parameter(value)

    def append(self, value: Tensor) -> ParameterList:
        """Add ``value`` (a Parameter, or a float Tensor made one) at the end; returns self."""
        self._items.append(self._check(value, "append"))
        return self

    def extend(self, values: Iterable[Tensor]) -> ParameterList:
        """Add each of ``values`` at the end; returns self."""
        if isinstance(values, Tensor) or not isinstance(values, Iterable):
            raise ArgumentError(f"ParameterList.extend: got a {type(values).__name__}; expected an iterable of "
                                f"Parameters")
        self._items.extend(self._check(v, "extend") for v in list(values))
        return self

    def insert(self, index: int, value: Tensor) -> None:
        """Insert ``value`` before position ``index`` (the items after it are renumbered)."""
        self._items.insert(_index("ParameterList.insert", index, len(self._items), insert=True),
                           self._check(value, "insert"))

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return ParameterList(self._items[i])
        return self._items[_index("ParameterList", i, len(self._items))]

    def __setitem__(self, i: int, value: Tensor) -> None:
        self._items[_index("ParameterList", i, len(self._items))] = self._check(value, "__setitem__")

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(list(self._items))

    def extra_repr(self) -> str:
        return ", ".join(f"({i}): {tuple(p.shape)} {p.dtype.value}" for i, p in enumerate(self._items))
