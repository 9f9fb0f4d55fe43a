"""Teaching views: the tape table, source capture, reprs, DOT drawings, the traced backward walk,
tensor hooks and anomaly mode."""

import inspect
import re
import shutil
import threading

import jax
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.autodiff import anomaly, views
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import MulOp, Operation
from jtape.tensor.errors import DTypeError, ShapeError, TapeError


def here() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


def fan_out(backend):
    """y = x*x + 2x: x is read three times, so its gradient is a sum of three shares."""
    x = autodiff.label(tensor.from_slice([3.0, -1.0], (2,), backend), "x")
    y = autodiff.label(x * x + x * 2.0, "y")
    return x, y


# -- 1. the table ---------------------------------------------------------------------------------
def test_summary_lists_ops_shapes_dtypes_and_bytes(backend):
    x, y = fan_out(backend)
    w = tensor.ones((2, 3), backend)
    _ = (y.reshape(1, 2) @ w).sum()
    table = backend.tape().summary()
    lines = table.splitlines()
    assert lines[0] == "GradientTape: 6 ops, recording; holds 80 B in 8 tensors"
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert cells == [
        ["#", "op", "inputs", "output", "holds"],
        ["0", "Mul", "x (2,) float32, x (2,) float32", "t0 (2,) float32", "16 B"],
        ["1", "MulScalar(scalar=2.0)", "x (2,) float32", "t1 (2,) float32", "16 B"],
        ["2", "Add", "t0 (2,) float32, t1 (2,) float32", "y (2,) float32", "24 B"],
        ["3", "Reshape(shape=(1, 2))", "y (2,) float32", "t3 (1, 2) float32", "16 B"],
        ["4", "MatMul", "t3 (1, 2) float32, leaf0 (2, 3) float32", "t4 (1, 3) float32", "44 B"],
        ["5", "Sum", "t4 (1, 3) float32", "t5 () float32", "16 B"],
    ]
    assert "source" not in lines[1]  # capture was off
    assert str(backend.tape()) == table
    assert repr(backend.tape()) == "GradientTape(6 ops, recording)"
    backend.tape().clear()
    assert str(backend.tape()) == "GradientTape: 0 ops, recording; holds 0 B in 0 tensors"
    _ = x.exp()
    assert backend.tape().summary().startswith("GradientTape: 1 op, recording; holds 16 B in 2 tensors\n")


def test_summary_truncates_long_tapes():
    backend = autodiff.new(NumpyBackend())
    x = tensor.ones((2,), backend)
    for _ in range(500):
        x = x.add_scalar(1.0)
    tape = backend.tape()
    table = tape.summary(max_rows=10)
    lines = table.splitlines()
    assert len(lines) == 2 + 10 + 1
    assert lines[7] == "  ... 490 ops not shown (summary(max_rows=None) shows all) ..."
    assert lines[2].lstrip().startswith("0  ") and lines[-1].startswith("499  ")
    assert len(str(tape).splitlines()) == 2 + 40 + 1          # print(tape): 40 rows by default
    assert len(tape.summary(max_rows=None).splitlines()) == 502
    with pytest.raises(ValueError, match="summary: got max_rows=1; expected None or at least 2"):
        tape.summary(max_rows=1)


def test_repr_html_for_notebooks(backend):
    x, y = fan_out(backend)
    page = backend.tape()._repr_html_()
    assert page.startswith("<p><b>GradientTape: 3 ops, recording") and "<table>" in page
    assert "<th>op</th>" in page and "<td>MulScalar(scalar=2.0)</td>" in page
    autodiff.label(x, "<x>")
    assert "&lt;x&gt; (2,) float32" in backend.tape()._repr_html_()
    for _ in range(5):
        y = y.exp()
    assert "… 4 ops not shown …" in backend.tape()._repr_html_(max_rows=4)


def test_tensor_repr_is_short_and_survives_jit(backend):
    x = tensor.from_slice([4.0], (1,), backend)
    assert repr(x) == f"Tensor([4.], shape=(1,), dtype=float32, backend={backend.name()})"
    big = tensor.zeros((1000,), backend)
    assert len(repr(big)) < 120 and "..." in repr(big)
    const = tensor.from_numpy(np.zeros(2, np.float32), backend, requires_grad=False)
    assert repr(const).endswith("requires_grad=False)")
    seen = []

    def f(a):
        seen.append(repr(tensor.Tensor(a, autodiff.new(JaxBackend("cpu")))))
        return a

    jax.jit(f)(JaxBackend("cpu").from_numpy(np.ones(3, np.float32)))
    assert seen == ["Tensor(traced, shape=(3,), dtype=float32, backend=Autodiff(jax))"]


# -- source capture -------------------------------------------------------------------------------
def test_source_capture_records_the_user_line(backend):
    x = tensor.from_slice([1.0, 2.0], (2,), backend)
    with autodiff.capture_source():
        line = here()
        y = (x * x).sum()
    ops = backend.tape().operations()
    assert [op.source.line for op in ops] == [line, line]
    assert ops[0].source.file == __file__ and ops[0].source.function == "test_source_capture_records_the_user_line"
    assert str(ops[0].source) == f"{__file__}:{line}"
    assert ops[0].source.code() == "y = (x * x).sum()"
    table = backend.tape().summary()
    assert table.splitlines()[1].split()[-1] == "source"
    assert table.splitlines()[2].endswith(f"test_inspect.py:{line}")
    _ = y * 2.0                                   # after the block: capture is off again
    assert backend.tape().operations()[-1].source is None


def test_capture_source_as_a_call_and_per_thread(backend):
    x = tensor.ones((2,), backend)
    autodiff.capture_source(True)
    try:
        assert anomaly.is_source_captured()
        other = []
        t = threading.Thread(target=lambda: other.append(anomaly.is_source_captured()))
        t.start()
        t.join()
        assert other == [False]                   # the switch belongs to the calling thread
        line = here()
        _ = x.exp()
    finally:
        autodiff.capture_source(False)
    assert backend.tape().operations()[0].source.line == line
    assert not anomaly.is_source_captured()


def test_source_costs_nothing_when_off(backend, monkeypatch):
    def never():
        raise AssertionError("the stack was walked although capture was off")

    monkeypatch.setattr(anomaly, "user_frame", never)
    x = tensor.ones((2,), backend)
    y = (x * x).sum()
    op = backend.tape().operations()[0]
    assert op.source is None
    with pytest.raises(AttributeError, match="_source"):
        Operation._source.__get__(op)             # the slot was never even written
    assert "_source" not in MulOp.static_names()  # so the compiled-rule cache keys are unchanged
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


# -- 2. drawings ----------------------------------------------------------------------------------
def test_to_dot_text(backend):
    # values=0: the structure only (values and grads of small tensors: tests/autodiff/test_drawings.py)
    x, y = fan_out(backend)
    dot = backend.tape().to_dot(values=0)
    assert dot.startswith('digraph "tape" {\n') and dot.endswith("}\n")
    assert 'T0 [label="x\\n(2,) float32", shape=ellipse, style=filled, fillcolor="#cfe2ff"];' in dot
    assert 'T3 [label="y\\n(2,) float32", shape=ellipse, style=filled, fillcolor="#d1e7dd"];' in dot
    assert 'O1 [label="[1] MulScalar(scalar=2.0)", shape=box' in dot
    for edge in ('T0 -> O0 [label="0"];', 'T0 -> O0 [label="1"];', "O0 -> T1;", "T0 -> O1;", "O2 -> T3;"):
        assert edge in dot
    grads = autodiff.backward(y, backend)
    with_grads = backend.tape().to_dot(grads=grads, values=0)
    assert 'label="x\\n(2,) float32\\ngrad [8., 0.]"' in with_grads
    assert 'label="y\\n(2,) float32\\ngrad [1., 1.]"' in with_grads
    autodiff.label(x, 'say "x"')
    assert 'label="say \\"x\\"\\n(2,) float32"' in backend.tape().to_dot(values=0)


def test_to_dot_shows_source_when_captured(backend):
    x = tensor.ones((2,), backend)
    with autodiff.capture_source():
        line = here()
        _ = x.exp()
    where = anomaly.SourceLocation(__file__, line, "").short()    # relative to the working directory
    assert f'label="[0] Exp\\n{where}"' in backend.tape().to_dot()


def test_render_without_graphviz_says_how_to_install(backend, monkeypatch, tmp_path):
    fan_out(backend)
    monkeypatch.setattr(views.shutil, "which", lambda name: None)
    with pytest.raises(autodiff.GraphvizError, match="the Graphviz program 'dot' was not found on PATH; install "
                                                      r"Graphviz \(apt-get install graphviz"):
        backend.tape().render(tmp_path / "g.svg")
    with pytest.raises(ValueError, match=r"render: got path '.*g.txt' with format 'txt'; expected a .svg, .png or"):
        backend.tape().render(tmp_path / "g.txt")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_with_graphviz(backend, tmp_path):
    x, y = fan_out(backend)
    grads = autodiff.backward(y, backend)
    svg = backend.tape().render(tmp_path / "g.svg", grads)
    assert svg == tmp_path / "g.svg" and "<svg" in svg.read_text() and "MulScalar" in svg.read_text()
    png = backend.tape().render(tmp_path / "g.out", format="png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(autodiff.GraphvizError, match="render: dot exited with status 1"):
        views.render_dot("digraph {", tmp_path / "bad.svg")


# -- 3. the traced backward walk ------------------------------------------------------------------
FAN_OUT_TRACE = """\
seed  ∂ℒ/∂y = [1., 1.]   (ℒ is the quantity being differentiated)
[2] Add: t0, t1 -> y
      g = ∂ℒ/∂y = [1., 1.]
      -> t0 (input 0): [1., 1.]
      -> t1 (input 1): [1., 1.]
[1] MulScalar(scalar=2.0): x -> t1
      g = ∂ℒ/∂t1 = [1., 1.]
      -> x (input 0): [2., 2.]
[0] Mul: x, x -> t0
      g = ∂ℒ/∂t0 = [1., 1.]
      -> x (input 0): [ 3., -1.]   fan-out: x already holds [2., 2.]; summed
      -> x (input 1): [ 3., -1.]   fan-out: summed with the share just sent to x
leaf  ∂ℒ/∂x = [8., 0.]"""


def test_trace_fan_out_walk(backend, capsys):
    x, y = fan_out(backend)
    events = []
    grads = autodiff.backward(y, backend, trace=events.append)
    assert "\n".join(map(str, events)) == FAN_OUT_TRACE
    assert [e.kind for e in events] == ["seed", "op", "grad", "send", "send", "op", "grad", "send", "op", "grad",
                                        "send", "send", "leaf"]
    assert events[-1].tensor == "x" and events[-1].grad is grads[x.raw()] and events[1].op_index == 2
    assert repr(events[0]) == "TraceEvent('seed', 'seed  ∂ℒ/∂y = [1., 1.]   (ℒ is the quantity being differentiated)')"
    backend.tape().backward(backend.full((2,), 1.0, "float32"), backend, output=y.raw(), trace=print)
    assert capsys.readouterr().out == FAN_OUT_TRACE + "\n"
    y.backward(tensor.ones_like(y), trace=print)  # Tensor.backward: the same walk, then the tape is cleared
    assert capsys.readouterr().out == FAN_OUT_TRACE + "\n"
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 0.0])


def test_tracing_context_and_untraced_walks(backend):
    x, y = fan_out(backend)
    events = []
    with autodiff.tracing(events.append):
        backend.tape().gradient(y, [x])
    assert "\n".join(map(str, events)) == FAN_OUT_TRACE
    events.clear()
    backend.tape().gradient(y, [x])              # outside the block: no trace
    assert events == []
    assert autodiff.observers.observe(backend.tape().operations(), {}, backend) is None


def test_trace_with_create_graph(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    y = x * x * x
    events = []
    (g,) = backend.tape().gradient(y, [x], create_graph=False)
    with autodiff.tracing(events.append):
        (g2,) = backend.tape().gradient(y, [x], create_graph=True)
    np.testing.assert_allclose(g2.numpy(), g.numpy())
    assert events[0].kind == "seed" and events[-1].text == "leaf  ∂ℒ/∂leaf0 = [12.]"


def test_trace_under_jit_prints_shapes_not_values():
    inner = JaxBackend("cpu")
    events = []

    def f(w_raw):
        backend = autodiff.new(inner)
        w = tensor.Tensor(w_raw, backend)
        return autodiff.backward((w * w).sum(), backend, trace=events.append)[w_raw]

    out = jax.jit(f)(inner.from_numpy(np.array([1.0, 2.0], np.float32)))
    np.testing.assert_allclose(np.asarray(out.data), [2.0, 4.0])
    assert events[0].text == "seed  ∂ℒ/∂t1 = traced   (ℒ is the quantity being differentiated)"


# -- tensor hooks ---------------------------------------------------------------------------------
def test_hook_inspects_then_replaces_then_is_removed(backend):
    x, y = fan_out(backend)
    h = autodiff.label(x * 1.0, "h")
    z = h.sum()
    seen = []
    look = h.register_hook(lambda g: seen.append(g.numpy().tolist()))
    double = h.register_hook(lambda g: g * 2.0)            # runs after `look`, in order
    events = []
    grads = autodiff.backward(z, backend, trace=events.append)
    assert seen == [[1.0, 1.0]]
    np.testing.assert_allclose(backend.to_numpy(grads[h.raw()]), [2.0, 2.0])   # the map holds the replacement
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), [2.0, 2.0])   # and it flowed on
    texts = [e.text.strip() for e in events if e.kind == "hook"]
    assert texts[0] == "hook test_hook_inspects_then_replaces_then_is_removed.<locals>.<lambda> on h saw the gradient"
    assert texts[1].endswith("on h replaced the gradient with [2., 2.]")
    double.remove()
    double.remove()                                        # removing twice is harmless
    look.remove()
    grads = autodiff.backward(z, backend)
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), [1.0, 1.0])
    assert seen == [[1.0, 1.0]]


def test_leaf_hook_runs_once_at_the_end_with_the_total(backend):
    x, y = fan_out(backend)
    totals = []
    handle = x.register_hook(lambda g: totals.append(g.numpy().tolist()) or g * 0.5)
    y.backward(tensor.ones_like(y))
    assert totals == [[8.0, 0.0]]                          # all three shares, summed, then the hook
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 0.0])
    handle.remove()


def test_hooks_and_name_follow_a_swapped_raw_tensor(backend):
    w = autodiff.label(tensor.ones((2,), backend), "w")
    seen = []
    handle = w.register_hook(lambda g: seen.append(g.numpy().tolist()))
    new = backend.full((2,), 3.0, "float32")
    w.assign(new)                                  # as an optimizer step swaps a Parameter's values
    events = []
    (w * w).sum().backward(trace=events.append)
    assert seen == [[6.0, 6.0]] and events[-1].text == "leaf  ∂ℒ/∂w = [6., 6.]"
    handle.remove()                                # the old handle removes the moved hook
    (w * w).sum().backward()
    assert seen == [[6.0, 6.0]]


def test_hook_errors(backend):
    x, y = fan_out(backend)
    with pytest.raises(TypeError, match="register_hook: got int; expected a callable"):
        x.register_hook(3)
    ints = tensor.from_numpy(np.array([1, 2], np.int32), backend)
    with pytest.raises(DTypeError, match="register_hook: got a tensor of dtype int32; expected a float tensor"):
        ints.register_hook(print)
    for fn, error, match in [
        (lambda g: tensor.ones((3,), backend), ShapeError,
         r"hook .* on a tensor of \(2,\) float32: got a gradient of shape \(3,\); expected the tensor's shape \(2,\)"),
        (lambda g: g.cast("float64"), DTypeError,
         r"hook .* on a tensor of \(2,\) float32: got a gradient of dtype float64; expected the tensor's dtype "
         r"float32"),
        (lambda g: [1.0, 2.0], TypeError, r"hook .* returned list; expected None, a Tensor or a RawTensor"),
    ]:
        handle = x.register_hook(fn)
        with pytest.raises(error, match=match):
            autodiff.backward(y, backend)
        handle.remove()
    np.testing.assert_allclose(backend.to_numpy(autodiff.backward(y, backend)[x.raw()]), [8.0, 0.0])


# -- 4. anomaly mode ------------------------------------------------------------------------------
def test_anomaly_in_forward_names_op_shapes_and_line(backend):
    x = tensor.from_slice([1.0, -1.0], (2,), backend)
    with autodiff.detect_anomaly():
        assert autodiff.is_anomaly_enabled()
        with pytest.raises(autodiff.AnomalyError, match=r"^detect_anomaly: LogOp produced NaN") as err:
            line = here()
            x.log()
        assert str(err.value) == (
            f"detect_anomaly: LogOp produced NaN in the forward pass — inputs (2,) float32 -> output (2,) float32; "
            f"recorded at {__file__}:{line} (in test_anomaly_in_forward_names_op_shapes_and_line): x.log()")
        big = tensor.from_slice([1000.0], (1,), backend)
        with pytest.raises(autodiff.AnomalyError, match="ExpOp produced Inf in the forward pass"):
            big.exp()
        assert isinstance(autodiff.AnomalyError("x"), FloatingPointError)
    assert not autodiff.is_anomaly_enabled()
    _ = x.log()                                            # off again: NaN passes silently


def test_anomaly_in_backward_names_op_shapes_and_line(backend):
    x = tensor.from_slice([0.0, 4.0], (2,), backend)
    with autodiff.detect_anomaly():
        line = here()
        y = x.sqrt().sum()                                 # forward is finite: sqrt(0) = 0
        with pytest.raises(autodiff.AnomalyError, match=(
                r"detect_anomaly: the backward rule of SqrtOp produced Inf in the gradient for input 0 \(\(2,\) "
                r"float32\) from a finite incoming gradient — inputs \(2,\) float32 -> output \(2,\) float32; "
                rf"recorded at {__file__}:{line} ")):
            y.backward(retain_graph=True)
    # Recorded outside anomaly mode: the error says how to get the line.
    backend.tape().clear()
    y = x.sqrt().sum()
    with autodiff.detect_anomaly(), pytest.raises(autodiff.AnomalyError, match=r"source line unknown \(run the "
                                                                                r"forward pass under detect_anomaly"):
        y.backward()


def test_anomaly_checks_seeds_sums_and_hooks(backend):
    x = tensor.from_slice([1.0], (1,), backend)
    y = x * 2.0
    nan = backend.full((1,), float("nan"), "float32")
    with autodiff.detect_anomaly():
        with pytest.raises(autodiff.AnomalyError, match=r"the seed gradient for a tensor of \(1,\) float32 holds NaN"):
            backend.tape().backward(nan, backend, output=y.raw())
        handle = x.register_hook(lambda g: g * float("inf"))
        with pytest.raises(autodiff.AnomalyError, match=r"hook .* returned a gradient holding Inf"):
            autodiff.backward(y, backend)
        handle.remove()


def test_anomaly_sum_overflow_in_backward(backend):
    x = tensor.from_slice([1.0], (1,), backend)
    h = x * 1.0
    y = (h * 3e38).sum() + (h * 3e38).sum()                # each share is finite; their sum is not
    with autodiff.detect_anomaly(), pytest.raises(autodiff.AnomalyError, match=(
            r"the gradient arriving at MulScalarOp's output holds Inf \(the sum of finite contributions "
            r"overflowed\) — inputs \(1,\) float32 -> output \(1,\) float32")):
        autodiff.backward(y, backend)
    y = (x * 3e38).sum() + (x * 3e38).sum()
    with autodiff.detect_anomaly(), pytest.raises(autodiff.AnomalyError, match=(
            r"the gradient of a leaf tensor of \(1,\) float32 holds Inf \(the sum of finite contributions "
            r"overflowed\)")):
        autodiff.backward(y, backend)


def test_anomaly_under_jit_raises_clearly():
    inner = JaxBackend("cpu")

    def forward(w_raw):
        backend = autodiff.new(inner)
        return (tensor.Tensor(w_raw, backend) * 2.0).raw()

    w = inner.from_numpy(np.ones(2, np.float32))
    with autodiff.detect_anomaly(), pytest.raises(TapeError, match=(
            r"detect_anomaly: cannot check values in the forward pass while jax traces them \(inside jax.jit or "
            r"jtape.jit the values do not exist yet\); run the step without jit under detect_anomaly\(\)")):
        jax.jit(forward)(w)

    def backward(w_raw):
        backend = autodiff.new(inner)
        y = (tensor.Tensor(w_raw, backend) * 2.0).sum()
        with autodiff.detect_anomaly():
            return autodiff.backward(y, backend)[w_raw]

    with pytest.raises(TapeError, match="cannot check values in the backward pass while jax traces them"):
        jax.jit(backward)(w)
    jax.jit(forward)(w)                                    # anomaly mode off: jit is unaffected
