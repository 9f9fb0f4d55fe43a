"""``jtape.random``: randomness as state, JAX's way (see ``jtape.tensor.random``).

    jtape.random.seed(0)                 # the whole program's draws follow from 0
    w = nn.Linear(64, 32)                # its init key: the next key of the process default
    k = jtape.random.key()               # a fresh jax.random key from the same stream
    x = tensor.randn((4, 64), key=k)     # or seed=n, or neither (the process default)

Under ``jtape.jit`` the keys of the process default generator and of every ``Generator`` held by
a module in ``state`` are carried state: in as inputs, split inside the step, out as outputs.
"""

from .tensor.random import Generator, default_generator, get_key, key, seed, set_key

__all__ = ["Generator", "default_generator", "get_key", "key", "seed", "set_key"]
