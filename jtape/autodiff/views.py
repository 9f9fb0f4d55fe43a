"""Teaching views of a tape: the table (``print(tape)``, ``summary``, ``_repr_html_``) and the
drawing (``to_dot``, ``render``). ``GradientTape``'s methods of those names call these functions.

Tensors are named the same way in every view and in the backward trace: a name given with
``label(t, "x")`` (kept on the tensor: ``RawTensor.name``), else ``t{i}`` for the output of op
``i`` and ``leaf{k}`` for the k-th unnamed tensor that no recorded op produced.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from ..tensor.errors import JtapeError, TapeError
from ..tensor.raw import RawTensor


class GraphvizError(JtapeError, RuntimeError):
    """``render`` could not run Graphviz's ``dot`` (not installed, or it failed)."""


def label(t: Any, name: str) -> Any:
    """Name tensor ``t`` (a Tensor or RawTensor) in tape tables, drawings and traces; returns ``t``."""
    _raw(t).name = str(name)
    return t


def _raw(t: Any) -> RawTensor:
    return t if isinstance(t, RawTensor) else t.raw()


def tensor_names(ops: Sequence[Any]) -> dict[RawTensor, str]:
    """Every tensor on ``ops`` -> its display name (labels first, then ``t{i}`` / ``leaf{k}``)."""
    names: dict[RawTensor, str] = {}
    leaves = 0
    for i, op in enumerate(ops):
        for x in op.inputs():
            if x not in names:
                names[x] = x.name or f"leaf{leaves}"
                leaves += x.name is None
        out = op.output()
        names[out] = out.name or f"t{i}"
    return names


def format_values(x: RawTensor, threshold: int = 6) -> str:
    """The values on one line; past ``threshold`` elements, the shape and a few statistics instead
    (a weight matrix in a trace is a line, not a wall). "traced" under jax.jit."""
    data = x.value()
    if isinstance(data, jax.core.Tracer):
        return "traced"
    arr = np.asarray(data)
    if arr.dtype.kind not in "biufc":  # bfloat16 and other ml_dtypes: show as float32
        arr = arr.astype(np.float32)
    if arr.size > threshold:
        wide = arr.astype(np.float64)
        finite = wide[np.isfinite(wide)]
        stats = (f"mean {finite.mean():.4g}, std {finite.std():.4g}, min {finite.min():.4g}, max {finite.max():.4g}"
                 if finite.size else "no finite values")
        bad = arr.size - finite.size
        return f"{tuple(arr.shape)}: {stats}" + (f", {bad} non-finite" if bad else "")
    return " ".join(np.array2string(arr, precision=4, separator=", ").split())


def op_title(op: Any) -> str:
    """``Mul`` or ``SumDim(dim=0, keep_dim=False)``: the op's name and what it saved besides tensors."""
    statics = op.statics() if hasattr(op, "statics") else {}
    inner = ", ".join(f"{n}={_short(v)}" for n, v in statics.items())
    name = getattr(op, "name", type(op).__name__)
    return f"{name}({inner})" if inner else name


def _short(v: Any) -> str:
    return v.value if hasattr(v, "value") and hasattr(v, "numpy") else repr(v)  # a DataType prints as its name


def nbytes(x: RawTensor) -> int:
    return x.shape.size * x.dtype.itemsize


def held_tensors(op: Any) -> list[RawTensor]:
    """The distinct tensors an op keeps alive until the tape is cleared: its inputs and output."""
    seen: dict[int, RawTensor] = {}
    for x in (*op.inputs(), op.output()):
        seen.setdefault(id(x), x)
    return list(seen.values())


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _shown(n: int, max_rows: int | None) -> tuple[list[int], int]:
    """Row indices to show (head and tail) and how many are elided in between."""
    if max_rows is not None and max_rows < 2:
        raise ValueError(f"summary: got max_rows={max_rows}; expected None or at least 2")
    if max_rows is None or n <= max_rows:
        return list(range(n)), 0
    head = max_rows - max_rows // 2
    return list(range(head)) + list(range(n - max_rows // 2, n)), n - max_rows


def _rows(tape: Any, max_rows: int | None) -> tuple[list[list[str]], int, list[str]]:
    ops = tape.operations()
    names = tensor_names(ops)
    shown, elided = _shown(len(ops), max_rows)
    with_source = any(getattr(ops[i], "source", None) is not None for i in shown)
    header = ["#", "op", "inputs", "output", "holds"] + (["source"] if with_source else [])
    rows = []
    for i in shown:
        op = ops[i]
        out = op.output()
        row = [str(i), op_title(op),
               ", ".join(f"{names[x]} {tuple(x.shape)} {x.dtype.value}" for x in op.inputs()),
               f"{names[out]} {tuple(out.shape)} {out.dtype.value}",
               format_bytes(sum(nbytes(x) for x in held_tensors(op)))]
        if with_source:
            row.append(op.source.short() if op.source is not None else "")
        rows.append(row)
    return rows, elided, header


def _totals(tape: Any) -> str:
    ops = tape.operations()
    distinct = {id(x): x for op in ops for x in held_tensors(op)}
    state = "recording" if tape.is_recording() else "stopped"
    held = format_bytes(sum(map(nbytes, distinct.values())))
    plural = "" if len(ops) == 1 else "s"
    return f"GradientTape: {len(ops)} op{plural}, {state}; holds {held} in {len(distinct)} tensors"


def summary(tape: Any, max_rows: int | None = 40) -> str:
    """The tape as a table: index, op, inputs and output (name, shape, dtype), the bytes each op
    holds until the tape is cleared (its inputs and output: every Operation keeps both alive,
    whatever its rule reads — the "Saves:" line of a rule's docstring says which of them the rule
    uses), and — when ``capture_source`` was on — the user-code line that recorded it. Past
    ``max_rows`` rows only the first and last ones are shown (``max_rows=None``: every row)."""
    rows, elided, header = _rows(tape, max_rows)
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    right = {0, 4}

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    if not rows:
        return _totals(tape)
    lines = [_totals(tape), line(header)]
    head = len(rows) - (max_rows // 2 if elided else 0)
    for k, row in enumerate(rows):
        if elided and k == head:
            lines.append(f"  ... {elided} ops not shown (summary(max_rows=None) shows all) ...")
        lines.append(line(row))
    return "\n".join(lines)


def html_table(tape: Any, max_rows: int | None = 40) -> str:
    """The summary table as HTML, for notebooks."""
    rows, elided, header = _rows(tape, max_rows)
    esc = html.escape
    parts = [f"<p><b>{esc(_totals(tape))}</b></p>", "<table>",
             "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    head = len(rows) - (max_rows // 2 if elided else 0)
    for k, row in enumerate(rows):
        if elided and k == head:
            parts.append(f'<tr><td colspan="{len(header)}">… {elided} ops not shown …</td></tr>')
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return "\n".join(parts + ["</table>"])


def to_dot(tape: Any, grads: Mapping[Any, Any] | None = None, *, name: str = "tape", values: int = 8) -> str:
    """The recorded graph as Graphviz DOT text: tensors (ellipses: name, shape, dtype; leaves
    blue, results green) and ops (boxes: ``[index] op``), edges in the direction data flows. A
    tensor of at most ``values`` elements shows its values ("data") and its gradient ("grad"), as
    micrograd's drawings do: from ``grads`` (a map tensor -> gradient, as ``autodiff.backward``
    returns) or else the tensor's own ``.grad``. Drawing a tape that a backward has just released
    raises (there is nothing left to draw): draw before it, or keep it with ``retain_graph=True``."""
    ops = tape.operations()
    if not ops and tape.released_ops():
        raise TapeError(f"to_dot: the tape is empty — the last backward released its {tape.released_ops()} ops; "
                        f"draw it before that backward, or run the backward with retain_graph=True and draw after "
                        f"(the leaves' .grad then show in the drawing)")
    names = tensor_names(ops)
    g = {} if grads is None else {_raw(k): _raw(v) for k, v in grads.items() if v is not None}
    produced = {op.output() for op in ops}
    consumed = {x for op in ops for x in op.inputs()}
    node = {x: f"T{k}" for k, x in enumerate(names)}
    lines = [f"digraph {_quote(name)} {{", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for x, n in names.items():
        text = f"{n}\\n{tuple(x.shape)} {x.dtype.value}"
        grad = g.get(x, x.grad)
        if x.shape.size <= values:
            text += f"\\ndata {format_values(x, values)}"
            if grad is not None:
                text += f"\\ngrad {format_values(grad, values)}"
        elif x in g:
            text += f"\\ngrad {format_values(g[x])}"
        color = "#cfe2ff" if x not in produced else "#d1e7dd" if x not in consumed else "white"
        lines.append(f'  {node[x]} [label="{_escape(text)}", shape=ellipse, style=filled, fillcolor="{color}"];')
    for i, op in enumerate(ops):
        text = f"[{i}] {op_title(op)}"
        if getattr(op, "source", None) is not None:
            text += f"\\n{op.source.short()}"
        lines.append(f'  O{i} [label="{_escape(text)}", shape=box, style="rounded,filled", fillcolor="#fff3cd"];')
        inputs = op.inputs()
        for k, x in enumerate(inputs):
            edge_label = f' [label="{k}"]' if len(inputs) > 1 else ""
            lines.append(f"  {node[x]} -> O{i}{edge_label};")
        lines.append(f"  O{i} -> {node[op.output()]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


class Drawing:
    """A tape's graph, for a notebook: shows itself inline (``_repr_svg_`` with Graphviz, else its
    DOT text), ``.dot`` is the DOT text, ``.render(path)`` writes a file."""

    def __init__(self, dot: str):
        self.dot = dot

    def _repr_svg_(self) -> str | None:
        if shutil.which("dot") is None:
            return None
        done = subprocess.run(["dot", "-Tsvg"], input=self.dot.encode(), capture_output=True, check=False)
        return done.stdout.decode() if done.returncode == 0 else None

    def _repr_html_(self) -> str:
        svg = self._repr_svg_()
        return svg if svg is not None else f"<pre>{html.escape(self.dot)}</pre>"

    def render(self, path: str | Path, *, format: str | None = None) -> Path:
        return render_dot(self.dot, path, format=format)

    def __str__(self) -> str:
        return self.dot


_FORMATS = ("svg", "png", "pdf")


def render_dot(dot: str, path: str | Path, *, format: str | None = None) -> Path:
    """Run Graphviz's ``dot`` on DOT text and write the picture to ``path``."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in _FORMATS:
        raise ValueError(f"render: got path {str(path)!r} with format {fmt!r}; expected a .svg, .png or .pdf path "
                         f"(or format='svg', 'png' or 'pdf')")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizError("render: the Graphviz program 'dot' was not found on PATH; install Graphviz "
                            "(apt-get install graphviz, brew install graphviz or conda install graphviz), or save "
                            "tape.to_dot() to a .dot file and draw it elsewhere")
    done = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise GraphvizError(f"render: dot exited with status {done.returncode}: {message}")
    return path


def _escape(text: str) -> str:
    """Escape a DOT label, keeping our ``\\n`` line breaks."""
    return text.replace("\\n", "\0").replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\n")


def _quote(text: str) -> str:
    return '"' + _escape(text) + '"'
