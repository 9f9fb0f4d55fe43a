"""A small GPT-style character language model, trained on the tape under ``jtape.jit``.

The text is the documentation CPython ships in ``pydoc_data.topics`` (the ``help()`` topics), so
nothing is downloaded. Each paragraph is kept once (the topics repeat one another), leaving about
377,000 characters; they are cut into blocks of 1,000 and every 10th block is held out, so the
held-out text (about 37,000 characters) samples every topic without repeating the training text.

The model is written out here, nanoGPT-style, from Tensor methods, as a teaching example:
token + position embeddings (the ``embedding`` op on two Parameters), ``--layers`` pre-norm blocks
    x = x + attention(layer_norm(x));   x = x + mlp(layer_norm(x))
of causal multi-head self-attention (q, k, v from one ``nn.Linear``; scores by ``matmul``; future
positions ``masked_fill``-ed; ``softmax``) and a GELU MLP, a final layer norm and a linear head
to the character logits; ``cross_entropy`` over every position. Every op is recorded on the tape
and differentiated by its hand-derived rule; ``jtape.jit`` compiles the whole training step —
forward, the tape's backward, the AdamW update — into one XLA program.

Dropout here threads an explicit ``jax.random`` key through the step (one fresh key per step,
split per dropout site): ``nn.Dropout`` draws its mask on the host at trace time, so under
``jtape.jit`` it would reuse one mask every step (issue 15 part 1 replaces it). The same key
gives the same masks eager and compiled, so the two runs give the same losses.

Run:  python examples/char_transformer.py [--steps 1500] [--batch-size 32] [--block-size 64] [--d-model 128]
          [--heads 4] [--layers 2] [--dropout 0.1] [--lr 3e-3] [--eager] [--seed 0] [--out runs/char_transformer]
Writes curves.png (training and held-out loss against step, wall and CPU time), history.json and
weights.npz into --out, and prints samples of generated text. Measured: docs/char-transformer.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import Tensor


# -- the text --------------------------------------------------------------------------------------
def load_text(block: int = 1000, every: int = 10) -> tuple[str, str]:
    """The help() topics of CPython's pydoc_data, split into (train, held-out) text.

    The topics repeat one another (a paragraph of "augassign" is also in "assignment"...): with
    repeats, 40% of the held-out 64-character windows would also be training text. So each
    paragraph is kept once (465,000 -> 377,000 characters; then 3.5% of them, common phrases
    and code); the text is cut into blocks of ``block`` characters and every ``every``-th is held out.
    """
    from pydoc_data.topics import topics

    seen: set[str] = set()
    paragraphs = [p for name in sorted(topics) for p in topics[name].split("\n\n")
                  if not (p in seen or seen.add(p))]
    text = "\n\n".join(paragraphs)
    blocks = [text[i:i + block] for i in range(0, len(text), block)]
    held = [b for i, b in enumerate(blocks) if i % every == every - 1]
    train = [b for i, b in enumerate(blocks) if i % every != every - 1]
    return "".join(train), "".join(held)


class Vocabulary:
    """Characters <-> ids: every character of the text gets one id, in sorted order."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.ids = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.ids[c] for c in text], dtype=np.int32)

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# -- the model ---------------------------------------------------------------------------------------
def dropout(x: Tensor, p: float, key: Any) -> Tensor:
    """Zero each element with probability ``p`` (scale the rest by 1/(1-p)); no-op without a key.
    The mask comes from ``key`` with jax.random, inside the compiled step: a new mask every step."""
    if key is None or p == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - p, tuple(x.shape))
    return x * (keep.astype(np.float32) / (1.0 - p))   # a jax array operand: a constant of the step


class LayerNormFromOps(nn.Module):
    """Layer norm written with mean/var ops: ``(x - mean) / sqrt(var + eps) * weight + bias`` over
    the last dim, with two Parameters. (``nn.LayerNorm`` of issue 15 does the same as one layer.)"""

    def __init__(self, dim: int, backend: Any, eps: float = 1e-5):
        self.eps = eps
        self.weight = nn.Parameter(tensor.ones((dim,), backend))
        self.bias = nn.Parameter(tensor.zeros((dim,), backend))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, correction=0)
        return (x - mean) * (var + self.eps).rsqrt() * self.weight + self.bias


class Initializers:
    """GPT-2's initialisation: N(0, 0.02²), residual projections scaled by 1/sqrt(2·layers); one
    seed per tensor, counted up from ``seed``."""

    def __init__(self, seed: int, layers: int):
        self.seed, self.residual_std = seed, 0.02 / math.sqrt(2 * layers)

    def next_seed(self) -> int:
        self.seed += 1
        return self.seed

    def linear(self, n_in: int, n_out: int, backend: Any, residual: bool = False) -> nn.Linear:
        std = self.residual_std if residual else 0.02
        return nn.Linear(n_in, n_out, backend, seed=self.next_seed(),
                         weight_init=functools.partial(nn.init.normal, std=std))

    def embedding(self, rows: int, dim: int, backend: Any) -> nn.Parameter:
        return nn.Parameter(nn.init.normal((rows, dim), backend, std=0.02, seed=self.next_seed()))


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t only."""

    def __init__(self, d_model: int, heads: int, block_size: int, p: float, init: Initializers, backend: Any):
        if d_model % heads:
            raise ValueError(f"CausalSelfAttention: got d_model={d_model}, heads={heads}; expected heads to "
                             f"divide d_model")
        self.heads, self.p = heads, p
        self.qkv = init.linear(d_model, 3 * d_model, backend)          # q, k and v in one matmul
        self.proj = init.linear(d_model, d_model, backend, residual=True)
        future = np.triu(np.ones((block_size, block_size), dtype=bool), 1)  # [i, j]: j > i
        self.future = tensor.from_numpy(future, backend)

    def forward(self, x: Tensor, keys: list) -> Tensor:
        b, t, c = x.shape
        hd = c // self.heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)                         # each [B, T, C]
        q, k, v = (z.reshape(b, t, self.heads, hd) for z in (q, k, v))  # [B, T, H, hd]
        q, kt, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1), v.permute(0, 2, 1, 3)  # kt: [B, H, hd, T]
        scores = q.matmul(kt) * (1.0 / math.sqrt(hd))                  # [B, H, T, T]
        scores = scores.masked_fill(self.future[:t, :t], -1e9)          # no looking ahead
        att = dropout(scores.softmax(-1), self.p, keys.pop())
        y = att.matmul(v).permute(0, 2, 1, 3).reshape(b, t, c)         # heads side by side again
        return dropout(self.proj(y), self.p, keys.pop())


class MLP(nn.Module):
    """d_model -> 4·d_model -> GELU -> d_model."""

    def __init__(self, d_model: int, p: float, init: Initializers, backend: Any):
        self.p = p
        self.up = init.linear(d_model, 4 * d_model, backend)
        self.down = init.linear(4 * d_model, d_model, backend, residual=True)

    def forward(self, x: Tensor, keys: list) -> Tensor:
        return dropout(self.down(self.up(x).gelu()), self.p, keys.pop())


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(norm(x)), then + mlp(norm(x))."""

    def __init__(self, d_model: int, heads: int, block_size: int, p: float, init: Initializers, backend: Any):
        self.norm1 = LayerNormFromOps(d_model, backend)
        self.attn = CausalSelfAttention(d_model, heads, block_size, p, init, backend)
        self.norm2 = LayerNormFromOps(d_model, backend)
        self.mlp = MLP(d_model, p, init, backend)

    def forward(self, x: Tensor, keys: list) -> Tensor:
        x = x + self.attn(self.norm1(x), keys)
        return x + self.mlp(self.norm2(x), keys)


class CharTransformer(nn.Module):
    """ids [B, T] -> logits [B, T, vocab]: embeddings, ``layers`` blocks, a final norm, a linear head."""

    def __init__(self, vocab: int, block_size: int, d_model: int, heads: int, layers: int, p: float,
                 backend: Any, seed: int = 0):
        init = Initializers(seed, layers)
        self.block_size, self.p = block_size, p
        self.token_embedding = init.embedding(vocab, d_model, backend)
        self.position_embedding = init.embedding(block_size, d_model, backend)
        self.positions = tensor.arange(block_size, backend=backend)
        self.blocks = [Block(d_model, heads, block_size, p, init, backend) for _ in range(layers)]
        self.norm = LayerNormFromOps(d_model, backend)
        self.head = init.linear(d_model, vocab, backend)

    def forward(self, ids: Tensor, key: Any = None) -> Tensor:
        """``key``: a jax.random key for dropout (training); None (or eval mode): no dropout."""
        t = ids.shape[1]
        if t > self.block_size:
            raise ValueError(f"CharTransformer: got {t} positions; expected at most block_size={self.block_size}")
        sites = 1 + 3 * len(self.blocks)   # embeddings; per block: attention weights and output, MLP output
        keys = list(jax.random.split(key, sites)) if key is not None and self.training else [None] * sites
        x = self.token_embedding.embedding(ids) + self.position_embedding.embedding(self.positions[:t])
        x = dropout(x, self.p, keys.pop())
        for block in self.blocks:
            x = block(x, keys)
        return self.head(self.norm(x))

    def loss(self, ids: Tensor, targets: Tensor, key: Any = None) -> Tensor:
        """Mean cross-entropy (nats per character) of the next character at every position."""
        logits = self(ids, key)
        b, t, v = logits.shape
        return logits.reshape(b * t, v).cross_entropy(targets.reshape(b * t))


# -- training ----------------------------------------------------------------------------------------
def batch(data: np.ndarray, rng: np.random.Generator, size: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` random windows of ``block`` characters and the characters that follow each one."""
    start = rng.integers(0, len(data) - block - 1, size)[:, None] + np.arange(block)
    return data[start], data[start + 1]


def windows(data: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out text as non-overlapping windows and their next characters: every character once."""
    n = (len(data) - 1) // block
    return data[:n * block].reshape(n, block), data[1:n * block + 1].reshape(n, block)


def make_backend(name: str) -> autodiff.AutodiffBackend:
    """jtape's tape over JaxBackend ("jax") or NumpyBackend ("numpy")."""
    return autodiff.new(JaxBackend() if name == "jax" else NumpyBackend())


def make_steps(model: CharTransformer, opt: optim.Optimizer, backend: Any, compiled: bool) -> tuple:
    """The training step (forward, backward, AdamW), the no-grad loss and the next-character logits;
    compiled with ``jtape.jit`` into one XLA program each, or run eagerly on the tape."""

    def train_step(ids: Tensor, targets: Tensor, key: Any) -> Tensor:
        loss = model.loss(ids, targets, key)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    def eval_loss(ids: Tensor, targets: Tensor) -> Tensor:
        with backend.no_grad():
            return model.loss(ids, targets)

    def last_logits(ids: Tensor) -> Tensor:
        with backend.no_grad():
            return model(ids)[:, -1]

    if not compiled:
        return train_step, eval_loss, last_logits
    return (jtape.jit(train_step, state=[model, opt]), jtape.jit(eval_loss, state=[model]),
            jtape.jit(last_logits, state=[model]))


def held_out_loss(eval_loss: Any, backend: Any, data: tuple[np.ndarray, np.ndarray], most: int) -> float:
    """Mean loss (nats/char) over the held-out windows, in equal batches of at most ``most`` windows
    (one shape, one compiled program; fewer than one batch's count of windows are left over)."""
    ids, targets = data
    size = len(ids) // -(-len(ids) // most)
    losses = [eval_loss(tensor.from_numpy(ids[i:i + size], backend, requires_grad=False),
                        tensor.from_numpy(targets[i:i + size], backend, requires_grad=False)).item()
              for i in range(0, len(ids) - size + 1, size)]
    return float(np.mean(losses))


def sample(last_logits: Any, backend: Any, vocab: Vocabulary, prompt: np.ndarray, n: int,
           rng: np.random.Generator, temperature: float = 0.8) -> str:
    """``n`` characters drawn one at a time after ``prompt`` (block_size ids: the window slides)."""
    window, out = prompt.copy(), []
    for _ in range(n):
        logits = last_logits(tensor.from_numpy(window[None], backend, requires_grad=False)).numpy()[0]
        p = np.exp((logits - logits.max()).astype(np.float64) / temperature)
        out.append(rng.choice(len(p), p=p / p.sum()))
        window = np.append(window[1:], np.int32(out[-1]))
    return vocab.decode(out)


def train(args: argparse.Namespace) -> dict:
    """Train for ``args.steps`` steps; evaluate on the held-out text every ``args.eval_every``."""
    from tqdm import tqdm

    train_text, held_text = load_text()
    vocab = Vocabulary(train_text + held_text)
    train_ids, held = vocab.encode(train_text), windows(vocab.encode(held_text), args.block_size)
    backend = make_backend(args.backend)
    model = CharTransformer(len(vocab.chars), args.block_size, args.d_model, args.heads, args.layers, args.dropout,
                            backend, seed=args.seed)
    warmup = min(args.warmup, args.steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, warmup, max(args.steps, warmup + 1), args.lr / 10)
    opt = optim.AdamW(model.parameters(), lr=schedule, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    compiled = not args.eager and args.backend == "jax"
    train_step, eval_loss, last_logits = make_steps(model, opt, backend, compiled)
    rng, key = np.random.default_rng(args.seed), jax.random.PRNGKey(args.seed)
    history: dict[str, list] = {"step": [], "loss": [], "eval_step": [], "held_out": [], "eval_seconds": [],
                                "eval_cpu_seconds": []}
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(range(1, args.steps + 1), desc="training", unit="step", disable=args.quiet)
    for step in bar:
        x, y = batch(train_ids, rng, args.batch_size, args.block_size)
        loss = train_step(tensor.from_numpy(x, backend, requires_grad=False),
                          tensor.from_numpy(y, backend, requires_grad=False), jax.random.fold_in(key, step))
        history["step"].append(step)
        history["loss"].append(loss.item())
        out_of_time = bool(args.time_limit) and time.perf_counter() - start > args.time_limit
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            history["eval_step"].append(step)
            history["held_out"].append(held_out_loss(eval_loss, backend, held, args.eval_batch))
            history["eval_seconds"].append(time.perf_counter() - start)
            history["eval_cpu_seconds"].append(time.process_time() - cpu_start)   # all threads: the work done
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", held_out=f"{history['held_out'][-1]:.3f}")
            if not args.quiet:
                bar.write(f"step {step}: training loss {np.mean(history['loss'][-args.eval_every:]):.4f}, held-out "
                          f"{history['held_out'][-1]:.4f} nats/char, {history['eval_seconds'][-1]:.0f} s "
                          f"({history['eval_cpu_seconds'][-1]:.0f} s of CPU)")
        if out_of_time:
            break
    history["seconds"], history["cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu_start
    prompt = held[0][0]
    samples = [sample(last_logits, backend, vocab, prompt, args.sample_chars, rng) for _ in range(args.samples)]
    return {"model": model, "backend": backend, "history": history, "samples": samples,
            "prompt": vocab.decode(prompt), "held_out_chars": held[0].size}


def plot_curves(history: dict, path: Path, title: str) -> None:
    """Training loss (per step, and its running mean) and held-out loss, against step and wall time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = np.asarray(history["loss"])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid") if len(loss) >= 20 else loss
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    by_step.plot(history["step"], loss, alpha=0.3, label="training batch")
    by_step.plot(history["step"][len(loss) - len(smooth):], smooth, label="training (mean of 20)")
    by_step.plot(history["eval_step"], history["held_out"], marker="o", label="held-out")
    by_time.plot(history["eval_seconds"], history["held_out"], marker="o", color="C2", label="held-out, wall time")
    by_time.plot(history["eval_cpu_seconds"], history["held_out"], marker="s", color="C3", label="held-out, CPU time")
    for ax in (by_step, by_time):
        ax.axhline(1.9, color="gray", linestyle="--", linewidth=1, label="1.9 nats/char")
        ax.set(ylabel="cross-entropy (nats/char)")
        ax.legend()
    by_step.set(xlabel="step")
    by_time.set(xlabel="seconds (evaluation included; CPU: all threads)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--steps", type=int, default=1500)
    add("--batch-size", type=int, default=32)
    add("--block-size", type=int, default=64, help="context length (characters)")
    add("--d-model", type=int, default=128)
    add("--heads", type=int, default=4)
    add("--layers", type=int, default=2)
    add("--dropout", type=float, default=0.1)
    add("--lr", type=float, default=3e-3, help="AdamW's peak learning rate (linear warmup, cosine decay to lr/10)")
    add("--warmup", type=int, default=100, help="warmup steps")
    add("--weight-decay", type=float, default=0.01)
    add("--eval-every", type=int, default=250, help="steps between held-out evaluations")
    add("--eval-batch", type=int, default=128, help="held-out windows per evaluation batch")
    add("--samples", type=int, default=2, help="how many samples to print")
    add("--sample-chars", type=int, default=200)
    add("--time-limit", type=float, default=0.0, help="stop after this many seconds (0: run all --steps)")
    add("--eager", action="store_true", help="run op by op on the tape instead of under jtape.jit")
    add("--seed", type=int, default=0, help="seeds the weights, the batches, the dropout masks and the samples")
    add("--backend", choices=["jax", "numpy"], default="jax", help="the inner backend (numpy runs eagerly)")
    add("--out", default="runs/char_transformer", help="directory for curves.png, history.json, weights.npz")
    add("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = train(args)
    history, model = result["history"], result["model"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "eager" if args.eager or args.backend == "numpy" else "jtape.jit"
    plot_curves(history, out / "curves.png", f"char transformer on pydoc topics ({mode}, {result['backend'].name()})")
    (out / "history.json").write_text(json.dumps(history, indent=1))
    model.save(out / "weights.npz")
    params = sum(p.shape.size for p in model.parameters())
    print(f"held-out loss: {history['held_out'][-1]:.4f} nats/char ({result['held_out_chars']} characters) after "
          f"{history['step'][-1]} steps, {history['seconds']:.1f} s ({history['cpu_seconds']:.1f} s of CPU; {mode}); "
          f"{params} parameters; wrote {out}")
    for i, text in enumerate(result["samples"]):
        print(f"--- sample {i + 1} (after {result['prompt'][-40:]!r}) ---\n{text}")
    return {"held_out": history["held_out"][-1], "history": history, "samples": result["samples"],
            "num_parameters": params, "out": str(out)}


if __name__ == "__main__":
    main()
