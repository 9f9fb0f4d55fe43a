"""A small residual CNN with BatchNorm on scikit-learn's bundled 8×8 digits, trained under
``jtape.jit``, saved as a checkpoint, reloaded into a fresh model and evaluated in ``eval()`` mode.

What it shows beyond ``digits_cnn.py``:

* **BatchNorm's buffers under jtape.jit**: in training mode each ``BatchNorm2d`` normalises with
  the batch's statistics and updates its running mean and variance (buffers, not parameters);
  ``jtape.jit(step, state=[model, opt])`` carries them into and out of the compiled step like the
  parameters, and the mode (train/eval) is part of the compiled program;
* **residual blocks**: ``y = relu(x + f(x))`` — the gradient reaches ``x`` twice, through the
  skip and through ``f``, and the walk adds the two shares;
* **checkpoints**: ``jtape.save`` writes parameters, buffers, the optimizer's moments and the step
  as safetensors; a fresh model loads them and, in ``eval()`` mode (running statistics), gives
  the same held-out accuracy as the trained one.

Same data and split as ``digits_cnn.py`` (1,797 digits, 20% held out, stratified, fixed seed).

Run:  python examples/digits_resnet.py [--epochs 30] [--batch-size 64] [--lr 0.005] [--seed 0]
                                       [--out runs/digits_resnet]
Writes curves.png (loss and accuracy per epoch) and checkpoint.safetensors into --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from digits_cnn import load_digits_split, plot_curves

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend


class Block(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``: two 3×3 convolutions (padding 1 keeps the size)
    with BatchNorm, added to the input — the skip connection."""

    def __init__(self, channels: int, backend: Any, seed: int):
        he = nn.init.kaiming_uniform
        self.conv1 = nn.Conv2D(channels, channels, 3, backend, padding=1, bias=False, seed=seed, weight_init=he)
        self.bn1 = nn.BatchNorm2d(channels, backend=backend)
        self.conv2 = nn.Conv2D(channels, channels, 3, backend, padding=1, bias=False, seed=seed + 1, weight_init=he)
        self.bn2 = nn.BatchNorm2d(channels, backend=backend)

    def forward(self, x: tensor.Tensor) -> tensor.Tensor:
        h = self.bn1(self.conv1(x)).relu()
        return (x + self.bn2(self.conv2(h))).relu()


class ResNet(nn.Module):
    """[N, 1, 8, 8] -> stem conv 32 -> two residual blocks -> 2×2 max-pool -> one residual block
    -> global average pool -> linear -> 10 logits."""

    def __init__(self, backend: Any, seed: int, width: int = 32):
        he = nn.init.kaiming_uniform
        self.stem = nn.Conv2D(1, width, 3, backend, padding=1, bias=False, seed=seed, weight_init=he)
        self.bn = nn.BatchNorm2d(width, backend=backend)
        self.blocks = nn.ModuleList([Block(width, backend, seed + 10 * (i + 1)) for i in range(3)])
        self.pool = nn.MaxPool2D(2)
        self.head = nn.Linear(width, 10, backend, seed=seed + 99)

    def forward(self, x: tensor.Tensor) -> tensor.Tensor:
        h = self.bn(self.stem(x)).relu()
        h = self.blocks[1](self.blocks[0](h))
        h = self.blocks[2](self.pool(h))                 # [N, width, 4, 4]
        return self.head(h.mean((2, 3)))                 # global average pool, then the classifier


def accuracy(model: nn.Module, backend: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Held-out accuracy in eval mode (running statistics), recording nothing."""
    was_training = model.training
    model.eval()
    with backend.no_grad():
        acc = nn.accuracy(model(tensor.from_numpy(x, backend, requires_grad=False)), y)
    model.train(was_training)
    return float(acc)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.005, help="AdamW's peak learning rate (cosine decay)")
    parser.add_argument("--width", type=int, default=32, help="channels of every convolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/digits_resnet")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backend = autodiff.new(JaxBackend(args.device))
    x_train, x_test, y_train, y_test = load_digits_split(args.seed, images=True)
    model = ResNet(backend, args.seed, args.width)
    steps = args.epochs * (len(x_train) // args.batch_size)
    opt = optim.AdamW(model.parameters(), lr=optax.warmup_cosine_decay_schedule(0.0, args.lr, steps // 20, steps),
                      weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    @jtape.jit(state=[model, opt])
    def train_step(x: tensor.Tensor, y: tensor.Tensor) -> tensor.Tensor:
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    rng = np.random.default_rng(args.seed)
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "test_acc": [], "epoch_seconds": []}
    bar = tqdm(range(args.epochs), desc="training", unit="epoch", disable=args.quiet)
    for _ in bar:
        start, losses = time.perf_counter(), []
        order = rng.permutation(len(x_train))
        for first in range(0, len(order) - args.batch_size + 1, args.batch_size):   # full batches: one shape
            idx = order[first:first + args.batch_size]
            x = tensor.from_numpy(x_train[idx], backend, requires_grad=False)
            y = tensor.from_numpy(y_train[idx], backend, requires_grad=False)
            losses.append(train_step(x, y))
        history["epoch_seconds"].append(time.perf_counter() - start)
        history["loss"].append(float(np.mean([loss.item() for loss in losses])))
        history["train_acc"].append(accuracy(model, backend, x_train, y_train))
        history["test_acc"].append(accuracy(model, backend, x_test, y_test))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", test_acc=f"{history['test_acc'][-1]:.4f}")

    # Save everything a resumed run needs, then evaluate a fresh model loaded from the file.
    path = out / "checkpoint.safetensors"
    jtape.save({"model": model, "optimizer": opt, "epoch": args.epochs}, path)
    fresh = ResNet(backend, args.seed + 1000, args.width)          # other initial weights on purpose
    checkpoint = jtape.load(path, into={"model": fresh})
    fresh.eval()
    reloaded = accuracy(fresh, backend, x_test, y_test)
    plot_curves(history, out / "curves.png", f"ResNet with BatchNorm on the digits (held-out {reloaded:.4f})")
    metrics = {"test_accuracy": history["test_acc"][-1], "reloaded_test_accuracy": reloaded,
               "train_accuracy": history["train_acc"][-1], "final_loss": history["loss"][-1],
               "epochs": args.epochs, "saved_epoch": checkpoint["epoch"],
               "seconds": float(np.sum(history["epoch_seconds"])), "history": history, "out": str(out)}
    if not args.quiet:
        print(f"held-out accuracy {metrics['test_accuracy']:.4f} (reloaded from {path}, eval mode: "
              f"{reloaded:.4f}); {metrics['seconds']:.0f} s of training; wrote {out / 'curves.png'}")
    return metrics


if __name__ == "__main__":
    main()
