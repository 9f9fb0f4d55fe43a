"""``Optimizer.state_dict`` / ``load_state_dict``: arrays plus JSON, a round trip that resumes bitwise,
edited options that take effect, and clear errors for a state that does not fit."""

import json

import numpy as np
import optax
import pytest

from jtape import nn, optim, tensor
from jtape.tensor.errors import ArgumentError, ShapeError

SHAPES = [(3, 2), (2,), (2, 4)]


def make_params(backend, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(tensor.from_numpy(rng.standard_normal(s), backend, "float32")) for s in SHAPES]


def steps(opt, params, backend, first, last):
    for k in range(first, last):
        rng = np.random.default_rng(100 + k)
        opt.step({p.raw(): backend.from_numpy(rng.standard_normal(s), "float32") for p, s in zip(params, SHAPES)})


MAKERS = {
    "adam_groups": lambda ps: optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.02, "betas": (0.8, 0.9)}],
                                         lr=0.05),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adamw_schedule": lambda ps: optim.AdamW(ps, lr=optax.cosine_decay_schedule(0.1, 10), weight_decay=0.1),
    "any_transform": lambda ps: optim.Optimizer(ps, optax.chain(optax.clip_by_global_norm(1.0), optax.lamb(0.01))),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_round_trip_resumes_bitwise(backend, kind):
    straight_params = make_params(backend)
    straight = MAKERS[kind](straight_params)
    steps(straight, straight_params, backend, 0, 6)

    first_params = make_params(backend)
    first = MAKERS[kind](first_params)
    steps(first, first_params, backend, 0, 3)
    saved = first.state_dict()
    json.dumps({k: v for k, v in saved.items() if k != "state"})          # everything but the arrays is JSON
    assert all(isinstance(a, np.ndarray) for a in saved["state"].values())
    assert saved["steps"] == 3

    resumed_params = [nn.Parameter(tensor.from_numpy(p.numpy(), backend, "float32")) for p in first_params]
    resumed = MAKERS[kind](resumed_params)
    resumed.load_state_dict(saved)
    assert resumed.steps == 3
    steps(resumed, resumed_params, backend, 3, 6)
    for a, b in zip(straight_params, resumed_params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_names_say_what_each_array_is(backend):
    params = make_params(backend)
    saved = optim.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.01).state_dict()
    assert saved["state"]["1/inner_state/hyperparams/learning_rate"].dtype == np.float32
    assert saved["state"]["1/inner_state/inner_state/0/mu/2"].shape == (2, 4)   # group 1's moment of parameter 2
    assert "0/inner_state/inner_state/0/mu/2" not in saved["state"]               # not in group 0
    assert saved["param_groups"] == [
        {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "weight_decay_mask": None, "params": [0]},
        {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "weight_decay_mask": None,
         "params": [1, 2]}]


def test_options_edited_in_the_state_dict_take_effect(backend):
    params = make_params(backend)
    opt = optim.SGD(params, lr=0.1)
    saved = opt.state_dict()
    saved["param_groups"][0]["lr"] = 0.5
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.5
    before = params[1].numpy()
    opt.step({params[1].raw(): backend.full((2,), 1.0, "float32")})
    np.testing.assert_allclose(before - params[1].numpy(), [0.5, 0.5], rtol=1e-6)


def test_a_state_that_does_not_fit_says_why(backend):
    params = make_params(backend)
    adam = optim.Adam(params, lr=0.01)
    saved = adam.state_dict()
    with pytest.raises(KeyError, match=r"SGD.load_state_dict: missing \[\], unexpected \['0/hyperparams/b1', "
                                       r"'0/hyperparams/b2'.*\(10 in all\); expected the 2 state arrays of the same"):
        optim.SGD(params, lr=0.1).load_state_dict(saved)
    bad = {**saved, "state": {**saved["state"], "0/inner_state/0/nu/1": np.zeros(3, np.float32)}}
    with pytest.raises(ShapeError, match=r"0/inner_state/0/nu/1 has shape \(3,\); expected \(2,\)"):
        adam.load_state_dict(bad)
    with pytest.raises(ArgumentError, match=r"got 2 parameter groups; expected 1"):
        adam.load_state_dict({**saved, "param_groups": saved["param_groups"] * 2})
    regrouped = optim.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.01)
    with pytest.raises(KeyError, match="missing"):
        regrouped.load_state_dict(saved)
    other_order = optim.Adam(params[::-1], lr=0.01)
    with pytest.raises(ShapeError, match=r"0/inner_state/0/mu/0 has shape \(3, 2\); expected \(2, 4\)"):
        other_order.load_state_dict(saved)
    fewer = {**saved, "param_groups": [{**saved["param_groups"][0], "params": [0, 1]}]}
    with pytest.raises(ArgumentError, match=r"group 0 holds parameters \[0, 1\]; expected \[0, 1, 2\]"):
        adam.load_state_dict(fewer)
    with pytest.raises(ArgumentError, match=r"got \['state'\]; expected a dict with 'state', 'param_groups'"):
        adam.load_state_dict({"state": saved["state"]})
    renamed = {**saved, "param_groups": [{**saved["param_groups"][0], "learning_rate": 0.1}]}
    with pytest.raises(ArgumentError, match=r"group 0 has options \['learning_rate'\]"):
        adam.load_state_dict(renamed)
