import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.catalogue.presets import get_variant
from agents.engine.loop import train
from agents.engine.networks import MLPParams, batched_matmul, forward, init_params
from agents.seeding import seed_streams


@settings(max_examples=600, deadline=None)
@given(k=st.integers(1, 4), m=st.integers(1, 70), c=st.integers(1, 70), n=st.integers(1, 70), seed=st.integers(0, 1000))
def test_batched_matmul_matches_addmm_per_seed_bit_for_bit(k, m, c, n, seed):
    gen = torch.Generator().manual_seed(seed)
    a, b, bias = (
        torch.randn(k, m, c, generator=gen),
        torch.randn(k, c, n, generator=gen),
        torch.randn(k, n, generator=gen),
    )
    out, out_no_bias = batched_matmul(a, b, bias), batched_matmul(a, b)
    for i in range(k):
        # nn.Linear's operands are separate, freshly allocated tensors: clone to match.
        assert torch.equal(out[i], torch.addmm(bias[i].clone(), a[i].clone(), b[i].clone()))
        assert torch.equal(out_no_bias[i], torch.mm(a[i].clone(), b[i].clone()))


def test_init_matches_nn_linear_init_from_the_same_generator():
    sizes = [4, 64, 64, 2]
    params = init_params([torch.Generator().manual_seed(5)], sizes, torch.device("cpu"))
    gen = torch.Generator().manual_seed(5)
    for w, b, fan_in, fan_out in zip(params.weights, params.biases, sizes[:-1], sizes[1:]):
        lin = torch.nn.Linear(fan_in, fan_out)
        bound = 1 / fan_in**0.5
        torch.nn.init.uniform_(lin.weight, -bound, bound, generator=gen)
        torch.nn.init.uniform_(lin.bias, -bound, bound, generator=gen)
        assert torch.equal(w[0], lin.weight.detach()) and torch.equal(b[0], lin.bias.detach())
        assert w.abs().max() <= bound


def snapshots(config, seeds=(0, 1)):
    """(updates, online, target, target before this update) copies for every update."""
    seen = []
    # Before the first update the target is the initial network, drawn from each seed's stream.
    previous = {"target": init_params([seed_streams(s).init for s in seeds], [4, 64, 64, 2], torch.device("cpu"))}

    def on_update(step, updates, online, target):
        seen.append((updates, online.clone(), target.clone(), previous.get("target")))
        previous["target"] = target.clone()

    train(config.replace(total_env_steps=600, eval_episodes=0, eval_period=600), list(seeds), on_update=on_update)
    return seen


def test_hard_target_equals_online_after_sync_and_is_untouched_between_syncs():
    config = get_variant("article-target").config.replace(target_sync_period=25)
    seen = snapshots(config)
    assert len(seen) > 100
    for updates, online, target, before in seen:
        if updates % 25 == 0:
            assert all(torch.equal(t, o) for t, o in zip(target.tensors(), online.tensors()))
            assert target.distance(online).eq(0).all()
        else:
            assert all(torch.equal(t, b) for t, b in zip(target.tensors(), before.tensors()))
            assert target.distance(online).gt(0).all()


def test_polyak_target_follows_the_exact_formula():
    tau = 0.05
    config = get_variant("replay-polyak").config.replace(target_tau=tau)
    seen = snapshots(config)
    assert len(seen) > 100
    for _, online, target, before in seen:
        for t, o, b in zip(target.tensors(), online.tensors(), before.tensors()):
            # target <- (1 - tau) * target + tau * online, rounded as in the engine.
            assert torch.equal(t, b.mul(1 - tau).add(o, alpha=tau))
            assert torch.allclose(t, (1 - tau) * b + tau * o, rtol=1e-6, atol=1e-7)


def test_polyak_contraction_on_a_fixed_online_network():
    """With the online net held still, the distance shrinks by exactly (1 - tau) per update."""
    sizes = [4, 8, 2]
    online = init_params([torch.Generator().manual_seed(1)], sizes, torch.device("cpu"))
    target = init_params([torch.Generator().manual_seed(2)], sizes, torch.device("cpu"))
    d0 = target.distance(online).double().item()
    for n in range(1, 30):
        target.polyak_(online, 0.1)
        assert target.distance(online).item() == pytest.approx(d0 * 0.9**n, rel=1e-4)


def test_forward_is_independent_of_the_other_seeds():
    sizes = [4, 64, 64, 2]
    gens = [torch.Generator().manual_seed(s) for s in range(5)]
    params = init_params(gens, sizes, torch.device("cpu"))
    solo = MLPParams([w[2:3].clone() for w in params.weights], [b[2:3].clone() for b in params.biases])
    x = torch.randn(5, 9, 4)
    assert torch.equal(forward(params, x)[2], forward(solo, x[2:3])[0])


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize(("batch", "hidden"), [(1, (64, 64)), (64, (64, 64)), (32, (128, 16, 64)), (7, (5,))])
def test_forward_and_backward_match_nn_modules_and_autograd_per_seed(layer_norm, batch, hidden):
    """The hand-written forward and backward against nn.Linear (+ nn.LayerNorm without affine)
    + nn.ReLU and autograd, each seed on its own, bit for bit, inside a batch of seeds."""
    from torch import nn

    from agents.engine.networks import backward, forward_with_activations

    sizes = [4, *hidden, 3]
    seeds = 3
    generators = [torch.Generator().manual_seed(s) for s in range(seeds)]
    params = init_params(generators, sizes, torch.device("cpu"), layer_norm)
    gen = torch.Generator().manual_seed(99)
    x = torch.randn(seeds, batch, 4, generator=gen) * 3
    grad_q = torch.randn(seeds, batch, 3, generator=gen)
    acts = forward_with_activations(params, x)
    grads = backward(params, acts, grad_q)
    for k in range(seeds):
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(params.weights, params.biases)):
            linear = nn.Linear(w.shape[2], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(w[k])
                linear.bias.copy_(b[k])
            layers.append(linear)
            if i < len(params.weights) - 1:
                layers += [nn.LayerNorm(w.shape[1], elementwise_affine=False)] if layer_norm else []
                layers.append(nn.ReLU())
        net = nn.Sequential(*layers)
        q = net(x[k].clone())
        assert torch.equal(acts[-1][k], q.detach())
        q.backward(grad_q[k].clone())
        reference = [t.grad for t in net.parameters()]
        for mine, theirs in zip(grads, reference):
            assert torch.equal(mine[k], theirs)


def test_learning_rate_runs_are_the_maximal_runs_of_equal_consecutive_seeds():
    from agents.engine.networks import _runs

    assert _runs([1e-3, 1e-3, 3e-3, 1e-3]) == [(0, 2, 1e-3), (2, 3, 3e-3), (3, 4, 1e-3)]
    assert _runs([0.5]) == [(0, 1, 0.5)]
