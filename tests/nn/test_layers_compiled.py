"""The new layers and losses inside a compiled training step (``jtape.jit``): the same losses and
parameters as the eager steps, step by step."""

import numpy as np

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend


class TinyLM(nn.Module):
    """Embedding, a pre-norm causal attention block in a ModuleList, a GELU head in a dict."""

    def __init__(self, backend):
        self.emb = nn.Embedding(11, 16, padding_idx=0, backend=backend, dtype="float64", seed=0)
        self.blocks = nn.ModuleList([nn.LayerNorm(16, backend=backend, dtype="float64"),
                                     nn.MultiheadAttention(16, 4, backend=backend, dtype="float64", seed=1),
                                     nn.LayerNorm(16, backend=backend, dtype="float64")])
        self.head = {"out": nn.Linear(16, 11, backend=backend, dtype="float64", seed=2), "act": nn.GELU()}

    def forward(self, ids):
        x = self.emb(ids)
        h = self.blocks[0](x)
        x = x + self.blocks[1](h, h, h, is_causal=True, need_weights=False)[0]
        return self.head["out"](self.head["act"](self.blocks[2](x)))


def run(compiled, steps=3):
    backend = autodiff.new(JaxBackend("cpu"))
    model = TinyLM(backend)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05, ignore_index=0)
    ids = np.random.default_rng(0).integers(0, 11, (4, 9)).astype(np.int32)
    x = tensor.from_numpy(ids[:, :-1], backend, requires_grad=False)
    y = tensor.from_numpy(ids[:, 1:].reshape(-1), backend, requires_grad=False)

    def step(x, y):
        loss = loss_fn(model(x).reshape(-1, 11), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    if compiled:
        step = jtape.jit(step, state=[model, opt])
    losses = [float(step(x, y).item()) for _ in range(steps)]
    return losses, {n: np.asarray(p.numpy()) for n, p in model.named_parameters()}


def test_a_compiled_step_matches_the_eager_steps():
    eager_losses, eager_params = run(False)
    compiled_losses, compiled_params = run(True)
    assert eager_losses[-1] < eager_losses[0]
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=1e-9)
    assert list(compiled_params) == list(eager_params)
    for name, value in eager_params.items():
        np.testing.assert_allclose(compiled_params[name], value, rtol=1e-8, atol=1e-10, err_msg=name)
    assert np.all(compiled_params["emb.weight"][0] == 0)   # the padding row never moved
