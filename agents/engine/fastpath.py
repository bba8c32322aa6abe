"""The engine's fast path: the same DQN with kernels chosen for speed rather than for matching nn.Linear.

The exact path (agents/networks.py) runs one gemm per seed wherever a batched kernel would round
differently from nn.Linear, and Adam as torch.optim.Adam's single-tensor operations. The fast
path (`train(..., path="fast")`) instead runs every layer of every seed in one batched kernel
(`torch.bmm` / `torch.baddbmm`, in whichever orientation is cheaper for the shape), and flushes
denormal floats to zero while it trains (Adam's second moments decay into denormals, which the
CPU handles many times slower). Adam stays the exact path's foreach operations: the fused kernel
(`torch._fused_adam_`) computes a tensor's scalar tail differently from its vector body, so over
the stacked parameters a seed's update would depend on K, and run per seed slice it is slower.

What it keeps: a seed's results do not depend on its neighbours or on how many seeds share
the batch. Every kernel choice below depends on the shapes of one seed's operands only, never
on K, and each kernel computes a seed's slice with the same instructions wherever it sits:
ATen's batched matmul either runs its naive loop (each element a fixed-order sum) or calls
the same gemm once per seed, which rounds alike for every seed when each seed's operand slices
start on a 64-byte boundary; where a shape cannot give that, the seed falls back to the exact
path's per-seed gemm on aligned copies. tests/test_fast_path.py checks the invariance bit for
bit and the agreement with the exact path within a float tolerance. Everything is written in
torch ops on the parameters' device, so the path runs unchanged with device="cuda".
"""

from __future__ import annotations

import contextlib

import torch

from agents.config import ENGINE_PATHS
from agents.engine.networks import (
    ALIGNMENT_BYTES,
    NAIVE_BMM_LIMIT,
    Activations,
    MLPParams,
    _all_slices_aligned,
    _hidden,
    batched_matmul,
)


def check_path(path: str) -> str:
    if path not in ENGINE_PATHS:
        raise ValueError(f"path={path!r} is invalid: must be one of {', '.join(ENGINE_PATHS)}")
    return path


def _bmm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """a (K, M, C) @ b (K, C, N) [+ bias (K, 1, N) or (K, M, 1)], one batched kernel when that is
    independent of K; otherwise each seed on its own (the exact path's aligned per-seed gemm)."""
    rows, contraction, cols = a.shape[1], a.shape[2], b.shape[2]
    naive = contraction * rows * cols < NAIVE_BMM_LIMIT  # ATen's per-element loop: no alignment needed
    on_cpu = a.device.type == "cpu"
    if (
        not on_cpu
        or naive
        or (
            (rows * cols * a.element_size()) % ALIGNMENT_BYTES == 0
            and _all_slices_aligned(a)
            and _all_slices_aligned(b)
        )
    ):
        return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)
    out = batched_matmul(a, b)
    return out if bias is None else out + bias


def matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a (K, M, C) @ b (K, C, N) [+ bias (K, N)] in the cheaper orientation: with fewer result
    columns than rows (a Q-head of 2 actions, a first-layer weight gradient) small-N gemms are
    slow, so the transposed product (b^T a^T)^T is computed instead. The choice reads shapes only."""
    if b.shape[2] < a.shape[1]:
        out_t = _bmm(b.transpose(1, 2), a.transpose(1, 2), None if bias is None else bias.unsqueeze(2))
        return out_t.transpose(1, 2)
    return _bmm(a, b, None if bias is None else bias.unsqueeze(1))


def forward(params: MLPParams, x: torch.Tensor) -> torch.Tensor:
    """Q-values (K, B, A) for inputs x (K, B, obs_dim)."""
    h = x
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(zip(params.weights, params.biases)):
        h = matmul(h, w.transpose(1, 2), b)
        if i < last:
            h = _hidden(params, h)
    return h


def forward_with_activations(params: MLPParams, x: torch.Tensor) -> Activations:
    acts = Activations([x])
    acts.norms = []
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(zip(params.weights, params.biases)):
        h = matmul(acts[-1], w.transpose(1, 2), b)
        acts.append(_hidden(params, h, acts.norms) if i < last else h)
    return acts


def backward(params: MLPParams, acts: Activations, grad_q: torch.Tensor) -> list[torch.Tensor]:
    """The exact path's backward (agents/networks.py) with the fast path's matmul."""
    n_layers = len(params.weights)
    grads: list[torch.Tensor] = [None] * (2 * n_layers)  # type: ignore[list-item]
    g = grad_q
    for i in reversed(range(n_layers)):
        h_in = acts[i]
        grads[2 * i] = matmul(g.transpose(1, 2), h_in).contiguous()
        grads[2 * i + 1] = g.sum(1)
        if i > 0:
            g = matmul(g, params.weights[i])
            g = torch.ops.aten.threshold_backward(g, h_in, 0)
            if params.layer_norm:
                z, mean, rstd = acts.norms[i - 1]
                g = torch.ops.aten.native_layer_norm_backward(
                    g, z, [z.shape[-1]], mean, rstd, None, None, [True, False, False]
                )[0]
    return grads


class FastKernels:
    """The kernels networks.forward / forward_with_activations / backward hand over to when an
    MLPParams carries them (MLPParams.kernels)."""

    forward = staticmethod(forward)
    forward_with_activations = staticmethod(forward_with_activations)
    backward = staticmethod(backward)


@contextlib.contextmanager
def flushing_denormals(enabled: bool):
    """Flush denormal floats to zero on the CPU while the fast path trains, then restore the default."""
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
