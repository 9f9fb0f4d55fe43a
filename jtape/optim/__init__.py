"""Optimizers over optax: ``SGD``, ``Adam``, ``AdamW``, and ``Optimizer`` for any optax transformation.

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads = autodiff.backward(loss, backend)       # or: loss.backward(); opt.step()
    opt.step(grads)
    backend.tape().clear()

Parameter groups (``[{"params": ..., "lr": ...}, ...]``), learning rates changed through
``opt.param_groups`` (eagerly and under ``jtape.jit``), ``opt.state_dict()`` /
``opt.load_state_dict()`` and ``clip_grad_norm_``. Updates run on raw arrays, never on the tape;
see ``jtape.nn.module`` for how a Parameter's values are replaced.
"""

from .clip import clip_grad_norm_
from .mixed_precision import MixedPrecision
from .optimizer import Optimizer
from .optimizers import SGD, Adam, AdamW

__all__ = ["SGD", "Adam", "AdamW", "MixedPrecision", "Optimizer", "clip_grad_norm_"]
