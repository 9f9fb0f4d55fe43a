"""A/B of conv and max-pool-backward formulations on the current platform: which kernel to keep.

Each pair runs interleaved in one process (one sample of A, one of B, many times); the median of
the per-sample ratios B/A is printed (below 1: B is faster). Results must agree (checked first).

    python benchmarks/conv_ab.py                 # CNN shapes, every comparison
    python benchmarks/conv_ab.py --big           # CNN-big shapes too
    python benchmarks/conv_ab.py --repeats 40

A = the formulation in use before issue 16 (lax.conv_general_dilated with NCHW/OIHW dimension
numbers; the tiled one-hot max-pool backward); B = a candidate: NHWC/HWIO transposes inside the
jitted kernel, im2col + matmul (jtape.ops.conv_kernels' CPU path), XLA's own select-and-scatter.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jtape.ops import conv_kernels as ck
from jtape.ops import pool_kernels as pk

ST = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}


def fwd_nhwc(x, k):
    out = lax.conv_general_dilated(x.transpose(0, 2, 3, 1), k.transpose(2, 3, 1, 0), (1, 1), [(1, 1), (1, 1)],
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out.transpose(0, 3, 1, 2)


def kgrad_nhwc(x, g):
    # dk[o, c, a, b] with x as [N, H, W, C] read as (feature N, batch C) and g [N, OH, OW, O] as (in N, out O)
    out = lax.conv_general_dilated(x.transpose(0, 2, 3, 1), g.transpose(0, 2, 3, 1), (1, 1), [(1, 1), (1, 1)],
                                   dimension_numbers=("CHWN", "IHWO", "NHWC"))
    return out.transpose(3, 0, 1, 2)


def igrad_nhwc(g, k):
    kf = jnp.flip(k.transpose(2, 3, 0, 1), (0, 1))                 # [KH, KW, O, C]: HWIO of the transpose
    out = lax.conv_general_dilated(g.transpose(0, 2, 3, 1), kf, (1, 1), [(1, 1), (1, 1)],
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out.transpose(0, 3, 1, 2)


def pool_xla(x, g):
    _, vjp = jax.vjp(lambda t: lax.reduce_window(t, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID"), x)
    return vjp(g)[0]


def pool_overlap_path(x, g):
    """The general (overlapping-window) path of max_pool2d_grad_jax, forced for a 2x2/2 pool."""
    oh, ow = g.shape[2:]
    views = pk._window_views(x, (2, 2), (2, 2), oh, ow)
    winner = jnp.argmax(jnp.stack([v for _, _, v in views]), axis=0)
    dx = jnp.zeros(x.shape, g.dtype)
    for t, (a, b, _) in enumerate(views):
        dx = dx.at[:, :, a:a + 2 * (oh - 1) + 1:2, b:b + 2 * (ow - 1) + 1:2].add(jnp.where(winner == t, g, 0.0))
    return dx


def ab(name: str, fa, fb, args: tuple, repeats: int) -> float:
    fa, fb = jax.jit(fa), jax.jit(fb)
    a, b = fa(*args), fb(*args)
    scale = float(jnp.max(jnp.abs(a)))
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-4 * scale, err_msg=name)
    inner = max(1, int(0.005 / max(_once(fa, args), 1e-7)))
    ta, tb = [], []
    for _ in range(repeats):
        for f, acc in ((fa, ta), (fb, tb)):
            start = time.perf_counter()
            for _ in range(inner):
                r = f(*args)
            r.block_until_ready()
            acc.append((time.perf_counter() - start) / inner)
    ratio = np.array(tb) / np.array(ta)
    print(f"{name:46s} A {np.median(ta) * 1e3:8.3f} ms  B {np.median(tb) * 1e3:8.3f} ms  B/A {np.median(ratio):.3f} "
          f"(p25 {np.percentile(ratio, 25):.3f}, p75 {np.percentile(ratio, 75):.3f})", flush=True)
    return float(np.median(ratio))


def _once(f, args) -> float:
    f(*args).block_until_ready()
    start = time.perf_counter()
    f(*args).block_until_ready()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--big", action="store_true", help="also the CNN-big shapes")
    args = parser.parse_args(argv)
    print(f"platform {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), jax {jax.__version__}")
    rng = np.random.default_rng(0)
    shapes = [(64, 1, 28, 16), (64, 16, 14, 32)] + ([(256, 3, 32, 64), (256, 64, 16, 128)] if args.big else [])
    for n, c, hw, o in shapes:
        x = jnp.asarray(rng.standard_normal((n, c, hw, hw)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((o, c, 3, 3)), jnp.float32)
        g = jnp.asarray(rng.standard_normal((n, o, hw, hw)), jnp.float32)
        tag = f"x{(n, c, hw, hw)} k{(o, c, 3, 3)}"
        kshape = k.shape

        def fwd(x, k):
            return ck._conv_lax(x, k, groups=1, **ST)

        def kgrad(x, g, kshape=kshape):
            return ck._kernel_grad_lax(x, g, kshape, groups=1, **ST)
        ab(f"fwd NHWC-inside / NCHW {tag}", fwd, fwd_nhwc, (x, k), args.repeats)
        ab(f"kgrad NHWC-inside / NCHW {tag}", kgrad, kgrad_nhwc, (x, g), args.repeats)
        if c > 1:
            def igrad(g, k, xshape=x.shape):
                return ck.conv2d_input_grad_jax(g, k, xshape, groups=1, **ST)
            ab(f"igrad NHWC-inside / NCHW {tag}", igrad, igrad_nhwc, (g, k), args.repeats)
        if c * 9 <= ck.IM2COL_MAX:
            ab(f"fwd im2col / NCHW {tag}", fwd, lambda x, k: ck._conv_im2col(x, k, ST["stride"], ST["padding"],
                                                                            ST["dilation"]), (x, k), args.repeats)
            ab(f"kgrad im2col / NCHW {tag}", kgrad,
               lambda x, g, kshape=kshape: ck._kernel_grad_im2col(x, g, kshape, ST["stride"], ST["padding"],
                                                                  ST["dilation"]),
               (x, g), args.repeats)
    for shape in [(64, 16, 28, 28), (64, 32, 14, 14)] + ([(256, 64, 32, 32)] if args.big else []):
        x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
        g = jnp.asarray(rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2)), jnp.float32)
        def tiled(x, g):
            return pk.max_pool2d_grad_jax(x, g, (2, 2), (2, 2), (0, 0))
        ab(f"maxpool grad XLA select-and-scatter / tiled {shape}", tiled, pool_xla, (x, g), args.repeats)
        ab(f"maxpool grad overlap path / tiled {shape}", tiled, pool_overlap_path, (x, g), args.repeats)


if __name__ == "__main__":
    main()
