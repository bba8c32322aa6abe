"""The engine's compiled path: the fast path with its gradient update fused by torch.compile.

`train(config, seeds, path="compiled")` computes the fast path's DQN (agents/engine/fastpath.py:
batched kernels in the cheaper orientation, denormals flushed), but the whole gradient update
(Bellman targets, forward, loss, backward, gradient norm and clipping, Adam) is one function
compiled by TorchInductor, which fuses its elementwise passes (bias, ReLU and its backward, the
loss, Adam's seven passes) into a few C++ loops and removes the per-op dispatch.

One graph serves every batch width: the seed axis is marked dynamic, so the graph compiled for
one K is reused at any other. Compiling takes tens of seconds, so the compiler's caches (the FX
graph and AOTAutograd caches) live in a user cache folder (compile_cache_dir) and a graph is
compiled once per network shape and set of knobs, not once per run or process.

What it keeps: a seed's results do not depend on its neighbours or on the batch width
(tests/test_compiled_path.py checks it bit for bit, alone and at widths 2 and 17), and it
agrees with the exact path within the fast path's float tolerances over a short run. Dynamo
compiles a separate graph for a seed axis of length 1, which rounds differently, so a lone seed
trains beside a copy of itself (padded_members). Runs whose update carries an injected bug of the
update (UPDATE_BUGS) or whose layer widths cannot keep every seed's matrix slices on 64-byte
boundaries take the fast path's update instead (compiles()).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from agents.config import AgentConfig
from agents.engine.bellman import bootstrap_mask
from agents.engine.family import SeedKnobs
from agents.engine.networks import ALIGNMENT_BYTES, LAYER_NORM_EPS, BatchedAdam, MLPParams, layer_sizes
from agents.engine.update import UpdateResult, loss_and_grad

# Where the compiler's caches live: this variable, else $XDG_CACHE_HOME (or ~/.cache)/dqn-ablations.
CACHE_ENV = "DQN_ABLATIONS_COMPILE_CACHE"


def compile_cache_dir() -> Path:
    """The user cache folder of the compiled path's graphs."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dqn-ablations" / "torch-compile"


TRACE_LOGGER = "torch.__trace"  # torch._logging's structured compile trace

# Graphs dynamo may keep per compiled function. There is one per network shape and set of knobs
# that are Python values (and with or without an update, for the step graph), so a process that
# trains many variants (a diagnosis worker down the ladder, a test session) needs more than
# dynamo's default of 8; past the limit a fullgraph compile raises instead of training.
GRAPHS_PER_FUNCTION = 256


def configure_compiler() -> Path:
    """Point TorchInductor's caches at compile_cache_dir (unless the user set them), turn on
    the FX graph and AOTAutograd caches and allow GRAPHS_PER_FUNCTION graphs; returns the folder."""
    folder = compile_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
    import torch._dynamo.config as dynamo_config
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, GRAPHS_PER_FUNCTION)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, GRAPHS_PER_FUNCTION)
    # torch logs its compile trace at DEBUG to TRACE_LOGGER whenever that logger has a handler (it
    # writes TORCH_TRACE's files); pytest's log capture gives it some, and a failing test's report
    # (a diagnosis's) then carried hundreds of trace lines. Quiet unless TORCH_TRACE asks for it.
    if not os.environ.get("TORCH_TRACE"):
        logging.getLogger(TRACE_LOGGER).setLevel(logging.WARNING)
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


class UpdateKnobs(NamedTuple):
    """The knobs the update reads, each a Python value (shared by every seed: baked into the
    graph) or a tensor with the seed axis first (an input of the graph)."""

    gamma: float | torch.Tensor
    mask_terminated: bool | torch.Tensor
    mask_truncated: bool | torch.Tensor
    double_q: bool | torch.Tensor
    huber: bool | torch.Tensor
    max_grad_norm: float | None | torch.Tensor


# --- the update, written for tracing: shapes decide every branch, never K or a data pointer --------


def _matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """fastpath.matmul without its alignment checks (compiles() guarantees aligned slices)."""
    if b.shape[2] < a.shape[1]:
        a, b = b.transpose(1, 2), a.transpose(1, 2)
        out = torch.bmm(a, b) if bias is None else torch.baddbmm(bias.unsqueeze(2), a, b)
        return out.transpose(1, 2)
    return torch.bmm(a, b) if bias is None else torch.baddbmm(bias.unsqueeze(1), a, b)


def _hidden(h: torch.Tensor, layer_norm: bool, norms: list | None = None) -> torch.Tensor:
    if not layer_norm:
        return h.relu()
    normed, mean, rstd = torch.ops.aten.native_layer_norm(h, [h.shape[-1]], None, None, LAYER_NORM_EPS)
    if norms is not None:
        norms.append((h, mean, rstd))
    return normed.relu()


def forward_layers(weights, biases, x, layer_norm: bool, norms: list | None = None) -> list[torch.Tensor]:
    """Every layer's input and the Q-values: [x, a1, ..., q]."""
    acts = [x]
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = _matmul(acts[-1], w.transpose(1, 2), b)
        acts.append(_hidden(h, layer_norm, norms) if i < last else h)
    return acts


def _backward(weights, acts, norms, grad_q, layer_norm: bool) -> list[torch.Tensor]:
    n_layers = len(weights)
    grads: list[torch.Tensor] = [None] * (2 * n_layers)  # type: ignore[list-item]
    g = grad_q
    for i in reversed(range(n_layers)):
        h_in = acts[i]
        grads[2 * i] = _matmul(g.transpose(1, 2), h_in)
        grads[2 * i + 1] = g.sum(1)
        if i > 0:
            g = torch.ops.aten.threshold_backward(_matmul(g, weights[i]), h_in, 0)
            if layer_norm:
                z, mean, rstd = norms[i - 1]
                g = torch.ops.aten.native_layer_norm_backward(
                    g, z, [z.shape[-1]], mean, rstd, None, None, [True, False, False]
                )[0]
    return grads


def _per_seed(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.view(-1, *([1] * (like.dim() - 1)))


def fused_update(
    params: list[torch.Tensor],
    target: list[torch.Tensor] | None,
    exp_avg: list[torch.Tensor],
    exp_avg_sq: list[torch.Tensor],
    batch: dict[str, torch.Tensor],
    knobs: UpdateKnobs,
    step_size: torch.Tensor,
    bias_correction2_sqrt: torch.Tensor,
    layer_norm: bool,
    betas: tuple[float, float],
    eps: float,
):
    """One DQN update of every seed, in place on params and Adam's moments; returns (y, Q(s, a),
    loss, gradient norm before clipping). params/target in MLPParams.tensors() order; step_size
    is -lr / bias_correction1 (0-dim, or (K,) with one learning rate per seed)."""
    weights, biases = params[0::2], params[1::2]
    # Bellman targets, as bellman.td_targets computes them.
    evaluator = target if target is not None else params
    q_next = forward_layers(evaluator[0::2], evaluator[1::2], batch["next_obs"], layer_norm)[-1]
    bootstrap = q_next.max(2).values
    if knobs.double_q is True or torch.is_tensor(knobs.double_q):
        best = forward_layers(weights, biases, batch["next_obs"], layer_norm)[-1].argmax(2, keepdim=True)
        chosen = q_next.gather(2, best).squeeze(2)
        bootstrap = chosen if knobs.double_q is True else torch.where(knobs.double_q, chosen, bootstrap)
    mask = bootstrap_mask(knobs, batch["terminated"], batch["truncated"])
    discount = batch["discount"] if "discount" in batch else knobs.gamma
    y = batch["reward"] + discount * bootstrap * (1.0 - mask.float())
    # The loss and its gradient, backward by hand (update.gradient_step's order).
    norms: list = []
    acts = forward_layers(weights, biases, batch["obs"], layer_norm, norms)
    q = acts[-1]
    action_index = batch["action"].unsqueeze(2)
    prediction = q.gather(2, action_index).squeeze(2)
    loss, grad_prediction = loss_and_grad(knobs, prediction, y)
    grad_q = torch.zeros_like(q).scatter_(2, action_index, grad_prediction.unsqueeze(2))
    grads = _backward(weights, acts, norms, grad_q, layer_norm)
    norms_per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
    grad_norm = torch.linalg.vector_norm(norms_per_tensor, dim=1)
    if knobs.max_grad_norm is not None:
        coef = torch.clamp((grad_norm + 1e-6).reciprocal() * knobs.max_grad_norm, max=1.0)
        grads = [g * _per_seed(coef, g) for g in grads]
    # Adam, as BatchedAdam.step's operations.
    beta1, beta2 = betas
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq):
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = v.sqrt() / bias_correction2_sqrt + eps
        size = step_size if step_size.dim() == 0 else _per_seed(step_size, p)
        p.add_(size * (m / denom))
    return y, prediction, loss, grad_norm


# --- which runs compile, and the compiled update the loop calls ----------------------------------


# Injected bugs that act inside the update: runs with one keep the fast path's update and its hooks.
UPDATE_BUGS = ("bug_target_gradient", "bug_no_zero_grad", "bug_greedy_gather")


def compiles(configs: list[AgentConfig], obs_dim: int, num_actions: int) -> bool:
    """Whether a family's update can take the compiled kernel: no injected bug inside the update,
    and every seed's slice of every matrix the update multiplies (weights, activations, their
    gradients) a whole number of 64-byte lines, so every slice of a stacked operand is aligned
    like a lone seed's and the batched kernels round alike at every K."""
    if any(getattr(c, bug) for c in configs for bug in UPDATE_BUGS):
        return False
    config = configs[0]
    sizes = layer_sizes(obs_dim, config.hidden_sizes, num_actions)
    floats = ALIGNMENT_BYTES // 4
    blocks = [a * b for a, b in zip(sizes[:-1], sizes[1:])] + [config.batch_size * n for n in sizes]
    return all(block % floats == 0 for block in blocks)


def padded_members(members: list) -> list:
    """A lone seed trains beside a copy of itself: dynamo compiles a separate graph for a seed axis
    of length 1, which rounds differently from the one every other width shares, so the compiled
    path never runs K = 1 (the copy's record is dropped)."""
    if sum(len(seeds) for _, seeds in members) == 1:
        return [*members, members[0]]
    return members


@dataclass
class CompileTimer:
    """Seconds spent in the first call of each compiled graph (compiling or loading it)."""

    seconds: float = 0.0
    calls: int = 0


# TorchInductor options of the engine's graphs: no size and stride asserts on the inputs in the
# generated wrapper (dynamo's guards check them already; at K = 1 the asserts cost about 6% of a step).
GRAPH_OPTIONS = {"size_asserts": False, "cpp_wrapper": True}
# The batch fields the update reads.
BATCH_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "discount")


@functools.cache
def _compiled():
    """fused_update compiled once per process; dynamo keeps one graph per set of static knobs
    and network shape, and (marked by the caller) a dynamic seed axis."""
    configure_compiler()
    return torch.compile(fused_update, fullgraph=True, options=GRAPH_OPTIONS)


class CompiledUpdate:
    """The loop's gradient step on the compiled path (same arguments and result as
    update.gradient_step, without bug hooks: compiles() keeps those runs on the fast path)."""

    def __init__(self, knobs: SeedKnobs, online: MLPParams, target: MLPParams | None, optimizer: BatchedAdam):
        self.online, self.target, self.optimizer = online, target, optimizer
        self.knobs = UpdateKnobs(
            knobs.gamma, knobs.mask_terminated, knobs.mask_truncated, knobs.double_q, knobs.huber, knobs.max_grad_norm
        )
        lr = optimizer.lr
        self.per_seed_lr = np.asarray(lr, dtype=np.float64) if isinstance(lr, list) else None
        self.timer = CompileTimer()
        self._function = _compiled()

    def adam_scalars(self) -> tuple[float | np.ndarray, float]:
        """Count the next Adam step; its step size -lr / bias_correction1 in double (one per seed
        with per-seed learning rates) and sqrt(bias_correction2), as BatchedAdam.step takes them."""
        opt = self.optimizer
        opt.step_count += 1
        step = opt.step_count
        bias_correction1 = 1 - opt.beta1**step
        step_size = -opt.lr / bias_correction1 if self.per_seed_lr is None else -self.per_seed_lr / bias_correction1
        return step_size, (1 - opt.beta2**step) ** 0.5

    def update_args(self, step_size: torch.Tensor, correction: torch.Tensor) -> tuple[tuple, tuple]:
        """fused_update's arguments before and after the batch, given the Adam step's scalars as
        float32 tensors (step_size 0-dim or (K,))."""
        opt = self.optimizer
        params = self.online.tensors()
        target = self.target.tensors() if self.target is not None else None
        head = (params, target, opt.exp_avg, opt.exp_avg_sq)
        tail = (self.knobs, step_size, correction, self.online.layer_norm, (opt.beta1, opt.beta2), opt.eps)
        return head, tail

    def _update_args(self) -> tuple[tuple, tuple]:
        """update_args for the next Adam step (counted here)."""
        step_size, correction = self.adam_scalars()
        device = self.online.weights[0].device
        # The step sizes as addcdiv's value: -lr / bias_correction1 in double, then float32.
        step_size = torch.as_tensor(step_size, dtype=torch.float64, device=device).float()
        return self.update_args(step_size, torch.tensor(correction, dtype=torch.float32, device=device))

    def __call__(self, batch: dict) -> UpdateResult:
        head, tail = self._update_args()
        params, target, exp_avg, exp_avg_sq = head
        step_size = tail[1]
        batch = {name: batch[name] for name in BATCH_FIELDS if name in batch}
        knob_tensors = [k for k in self.knobs if torch.is_tensor(k)]
        tensors = [*params, *(target or []), *exp_avg, *exp_avg_sq, *batch.values(), *knob_tensors]
        if self.per_seed_lr is not None:
            tensors.append(step_size)
        first = self.timer.calls == 0
        if first:  # one graph for every K >= 2 (dynamo specialises a size of 1)
            for tensor in tensors:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        started = time.perf_counter()
        y, prediction, loss, grad_norm = self._function(*head, batch, *tail)
        if first:
            self.timer.seconds += time.perf_counter() - started
        self.timer.calls += 1
        return UpdateResult(y, prediction, loss, grad_norm)
