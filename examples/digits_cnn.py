"""A LeNet-style CNN on scikit-learn's bundled 8×8 digits, trained with jtape's tape.

Every op of the forward pass is recorded on the tape; ``autodiff.backward`` walks it with the
hand-derived rules and returns the gradient map; ``optim.Adam`` (optax) updates the weights.
The 1,797 digits ship with scikit-learn, so nothing is downloaded. 20% of them (stratified,
fixed seed) are held out and never trained on.

Run:  python examples/digits_cnn.py [--epochs 15] [--backend jax|numpy] [--device cpu|gpu]
                                    [--batch-size 32] [--lr 0.003] [--seed 0] [--out runs/digits_cnn]
Writes curves.png (loss and accuracy per epoch) and weights.npz into --out.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optax

from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend


def build_cnn(backend: Any, seed: int) -> nn.Module:
    """[N, 1, 8, 8] -> two conv/ReLU/pool blocks -> [N, 32, 2, 2] -> two linear layers -> 10 logits."""
    he = nn.init.kaiming_uniform
    return nn.Sequential(
        nn.Conv2D(1, 16, 3, backend, padding=1, seed=seed, weight_init=he), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(16, 32, 3, backend, padding=1, seed=seed + 1, weight_init=he), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 64, backend, seed=seed + 2, weight_init=he), nn.ReLU(),
        nn.Linear(64, 10, backend, seed=seed + 3),
    )


def load_digits_split(seed: int, images: bool) -> tuple[np.ndarray, ...]:
    """Train/held-out split (80/20, stratified by class), pixels scaled to [0, 1], float32.
    ``images``: [N, 1, 8, 8] for a CNN; else flat [N, 64] for an MLP. Labels are int32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    x = x[:, None, :, :] if images else x.reshape(len(x), -1)
    y = digits.target.astype(np.int32)
    return tuple(train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed))


def make_backend(name: str, device: str) -> autodiff.AutodiffBackend:
    inner = JaxBackend(device) if name == "jax" else NumpyBackend()
    return autodiff.new(inner)  # its tape is recording


def evaluate(model: nn.Module, backend: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Held-out accuracy; no_grad, so nothing is recorded."""
    model.eval()
    with backend.no_grad():
        acc = nn.accuracy(model(tensor.from_numpy(x, backend, requires_grad=False)), y)
    model.train()
    return acc


def train(model: nn.Module, backend: Any, data: tuple[np.ndarray, ...], args: argparse.Namespace) -> dict:
    """The training loop: forward on the tape, backward through it, optax update, clear the tape."""
    from tqdm import tqdm

    x_train, x_test, y_train, y_test = data
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    # An optax schedule as the learning rate: cosine decay to 0 over the run steadies the last epochs.
    schedule = optax.cosine_decay_schedule(args.lr, max(1, args.epochs * steps_per_epoch))
    opt = optim.Adam(model.parameters(), lr=schedule)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "test_acc": [], "epoch_seconds": []}
    bar = tqdm(range(args.epochs), desc="training", unit="epoch", disable=args.quiet)
    for _ in bar:
        start, losses, hits = time.perf_counter(), [], 0.0
        order = rng.permutation(len(x_train))
        for first in range(0, len(order), args.batch_size):
            idx = order[first:first + args.batch_size]
            x = tensor.from_numpy(x_train[idx], backend, requires_grad=False)  # data: no gradient needed
            y = tensor.from_numpy(y_train[idx], backend)
            logits = model(x)                         # Conv2D, ReLU, MaxPool2D, ... all on the tape
            loss = loss_fn(logits, y)                 # CrossEntropyOp
            grads = autodiff.backward(loss, backend)  # dict RawTensor -> RawTensor
            backend.tape().clear()                    # release what the tape saved
            opt.step(grads)                           # optax's Adam, never recorded
            losses.append(loss.item())
            hits += nn.accuracy(logits, y_train[idx]) * len(idx)
        history["epoch_seconds"].append(time.perf_counter() - start)
        history["loss"].append(float(np.mean(losses)))
        history["train_acc"].append(hits / len(x_train))
        history["test_acc"].append(evaluate(model, backend, x_test, y_test))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", train_acc=f"{history['train_acc'][-1]:.3f}",
                        test_acc=f"{history['test_acc'][-1]:.3f}")
    return history


def plot_curves(history: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["loss"], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log")
    ax_acc.plot(epochs, history["train_acc"], marker="o", label="train")
    ax_acc.plot(epochs, history["test_acc"], marker="o", label="held-out")
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None, description: str, epochs: int, lr: float, out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=lr, help="Adam's initial learning rate (cosine decay to 0)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and the shuffling")
    parser.add_argument("--backend", choices=["jax", "numpy"], default="jax", help="the inner backend")
    parser.add_argument("--device", default="cpu", help="JaxBackend device: cpu, gpu or tpu")
    parser.add_argument("--out", default=out, help="directory for curves.png and weights.npz")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, build: Callable[[Any, int], nn.Module], images: bool, title: str) -> dict:
    """Train ``build(backend, seed)`` on the digits; save the curves and weights; return the metrics."""
    backend = make_backend(args.backend, args.device)
    data = load_digits_split(args.seed, images)
    model = build(backend, args.seed)
    history = train(model, backend, data, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(history, out / "curves.png", f"{title} on {backend.name()}")
    model.save(out / "weights.npz")
    test_acc = history["test_acc"][-1] if history["test_acc"] else evaluate(model, backend, data[1], data[3])
    print(f"held-out accuracy: {test_acc:.4f} ({len(data[1])} digits) after {args.epochs} epochs on "
          f"{backend.name()}; {np.median(history['epoch_seconds'] or [0.0]):.2f} s/epoch (median; the first "
          f"epoch also compiles: {(history['epoch_seconds'] or [0.0])[0]:.2f} s); wrote {out}")
    return {"test_accuracy": test_acc, "history": history, "out": str(out), "backend": backend.name(),
            "num_parameters": sum(p.shape.size for p in model.parameters())}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, __doc__, epochs=15, lr=3e-3, out="runs/digits_cnn")
    return run(args, build_cnn, images=True, title="digits CNN")


if __name__ == "__main__":
    main()
