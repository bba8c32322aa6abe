"""Q-networks for K seeds at once: an MLP whose parameters carry a leading seed axis.

Each layer's weight is (K, out, in) and bias (K, out); a forward pass is one batched matmul
per layer. The backward pass and Adam are written by hand rather than left to autograd:
per layer the weight gradient is grad_out^T @ input, exactly as nn.Linear computes it,
and Adam follows torch.optim.Adam's single-tensor update operation for operation. That
makes a seed trained here bit-identical to the same seed trained with nn.Linear and
torch.optim.Adam, and independent of how many seeds share the batch (autograd through
baddbmm with a transposed weight gives a first-layer weight gradient that differs in the
last bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# LayerNorm's epsilon, nn.LayerNorm's default.
LAYER_NORM_EPS = 1e-5


@dataclass
class MLPParams:
    """Weights (K, out, in) and biases (K, out) of each layer, first layer first. With
    layer_norm, every hidden layer is Linear -> LayerNorm (no learnable scale or shift, as
    nn.LayerNorm(width, elementwise_affine=False)) -> ReLU."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    layer_norm: bool = False
    # The fast path's kernels (agents.fastpath.FastKernels) when it trains this network; None: exact.
    kernels: type | None = None

    def tensors(self) -> list[torch.Tensor]:
        """Parameters in nn.Sequential order: w0, b0, w1, b1, ..."""
        return [t for pair in zip(self.weights, self.biases) for t in pair]

    def clone(self) -> MLPParams:
        return MLPParams(
            [w.clone() for w in self.weights], [b.clone() for b in self.biases], self.layer_norm, self.kernels
        )

    def copy_(self, other: MLPParams) -> None:
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine.copy_(theirs)

    def polyak_(self, online: MLPParams, tau: float) -> None:
        """target <- (1 - tau) * target + tau * online, in place."""
        for mine, theirs in zip(self.tensors(), online.tensors()):
            mine.mul_(1.0 - tau).add_(theirs, alpha=tau)

    def copy_seeds_(self, other: MLPParams, seeds: torch.Tensor) -> None:
        """Copy the given seeds' parameters (a boolean mask over the seed axis)."""
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine[seeds] = theirs[seeds]

    def polyak_seeds_(self, online: MLPParams, tau: float, seeds: torch.Tensor) -> None:
        """polyak_ for the given seeds only (a boolean mask), with the same operations."""
        for mine, theirs in zip(self.tensors(), online.tensors()):
            mine[seeds] = mine[seeds].mul_(1.0 - tau).add_(theirs[seeds], alpha=tau)

    def distance(self, other: MLPParams) -> torch.Tensor:
        """Per-seed L2 distance between two parameter sets, shape (K,)."""
        total = None
        for mine, theirs in zip(self.tensors(), other.tensors()):
            sq = (mine - theirs).square().flatten(1).sum(1)
            total = sq if total is None else total + sq
        return total.sqrt()


# Bit-identical batching. ATen's CPU bmm/baddbmm multiplies matrices with contraction * rows *
# cols below NAIVE_BMM_LIMIT in a naive loop, which rounds differently from the BLAS gemm that
# nn.Linear's addmm uses; at or above it, it calls that same gemm once per seed on slices of
# its operands. MKL's gemm also rounds differently when a matrix operand or the output does not
# start on a 64-byte boundary, as a slice of a stacked tensor may not (the bias is only copied
# into the output first, so its alignment does not matter). So the batched call is used only
# when every seed's slices are aligned; otherwise each seed gets its own mm/addmm on aligned
# operands (a misaligned operand is copied once into padded storage, each seed's slice keeping
# the strides a clone would have) into a fresh output. Either way every seed matches
# nn.Linear bit for bit, however many seeds share the batch (tests/test_networks.py).
NAIVE_BMM_LIMIT = 400
ALIGNMENT_BYTES = 64


def _aligned(t: torch.Tensor) -> bool:
    return t.data_ptr() % ALIGNMENT_BYTES == 0


def _all_slices_aligned(t: torch.Tensor) -> bool:
    return _aligned(t) and (t.stride(0) * t.element_size()) % ALIGNMENT_BYTES == 0


def _aligned_seeds(t: torch.Tensor) -> torch.Tensor:
    """t copied once into storage whose seed slices each start on a 64-byte boundary, every
    slice with the strides clone() would give it (one copy instead of one clone per seed)."""
    inner = torch.empty_like(t[0])  # clone()'s layout: the strides MKL then sees
    floats = ALIGNMENT_BYTES // t.element_size()
    padded = -(-inner.numel() // floats) * floats
    aligned = torch.empty_strided(t.shape, (padded, *inner.stride()), dtype=t.dtype, device=t.device)
    return aligned.copy_(t)


def batched_matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a (K, M, C) @ b (K, C, N) [+ bias (K, N)], each seed exactly as mm/addmm computes it."""
    rows, contraction = a.shape[1], a.shape[2]
    cols = b.shape[2]
    if contraction == 1 and bias is None:
        # A sum of one product is that product, rounded once, whatever kernel computes it:
        # the outer product (a weight gradient from a batch of one) needs no matmul at all.
        return a * b
    a_aligned, b_aligned = _all_slices_aligned(a), _all_slices_aligned(b)
    if (
        cols > 1  # addmm with a one-column result takes a gemv path that rounds differently
        and contraction * rows * cols >= NAIVE_BMM_LIMIT
        and (rows * cols * a.element_size()) % ALIGNMENT_BYTES == 0  # output slices
        and a_aligned
        and b_aligned
    ):
        if bias is None:
            return torch.bmm(a, b)
        return torch.baddbmm(bias.unsqueeze(1), a, b)
    a_seeds = (a if a_aligned else _aligned_seeds(a)).unbind(0)
    b_seeds = (b if b_aligned else _aligned_seeds(b)).unbind(0)
    if bias is None:
        return torch.stack([torch.mm(a_k, b_k) for a_k, b_k in zip(a_seeds, b_seeds)])
    return torch.stack([torch.addmm(c_k, a_k, b_k) for c_k, a_k, b_k in zip(bias.unbind(0), a_seeds, b_seeds)])


def aligned_batch(num_seeds: int, rows: int, width: int, device) -> torch.Tensor:
    """A zeroed (num_seeds, rows, width) view whose per-seed blocks each start on a 64-byte
    boundary (padded seed stride), so batched_matmul needs no aligning copies for it."""
    floats = ALIGNMENT_BYTES // 4
    block = rows * width
    padded = -(-block // floats) * floats
    storage = torch.zeros((num_seeds, padded), dtype=torch.float32, device=device)
    return storage[:, :block].view(num_seeds, rows, width)


def layer_sizes(obs_dim: int, hidden_sizes: tuple[int, ...], num_actions: int) -> list[int]:
    return [obs_dim, *hidden_sizes, num_actions]


def init_params(
    generators: list[torch.Generator],
    sizes: list[int],
    device: torch.device,
    layer_norm: bool = False,
    kernels: type | None = None,
) -> MLPParams:
    """nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight then bias,
    layer by layer, each seed drawing from its own generator."""
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / fan_in**0.5
        w = torch.empty(len(generators), fan_out, fan_in)
        b = torch.empty(len(generators), fan_out)
        for k, gen in enumerate(generators):
            w[k].uniform_(-bound, bound, generator=gen)
            b[k].uniform_(-bound, bound, generator=gen)
        weights.append(w.to(device))
        biases.append(b.to(device))
    return MLPParams(weights, biases, layer_norm, kernels)


class Activations(list):
    """[x, a1, ..., q]: every layer's input and the output; with LayerNorm also, per hidden
    layer, the (pre-norm output z, mean, rstd) its backward needs."""

    norms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _hidden(params: MLPParams, h: torch.Tensor, norms: list | None = None) -> torch.Tensor:
    """A hidden layer's nonlinearity: ReLU, after LayerNorm when the net normalises. LayerNorm
    runs ATen's own kernel (what nn.LayerNorm calls) over the last axis; rows are independent,
    so the seed axis in front changes nothing (tests/test_networks.py)."""
    if not params.layer_norm:
        return h.relu()
    normed, mean, rstd = torch.ops.aten.native_layer_norm(h, [h.shape[-1]], None, None, LAYER_NORM_EPS)
    if norms is not None:
        norms.append((h, mean, rstd))
    return normed.relu()


def forward(params: MLPParams, x: torch.Tensor) -> torch.Tensor:
    """Q-values (K, B, A) for inputs x (K, B, obs_dim); no activations kept."""
    if params.kernels is not None:
        return params.kernels.forward(params, x)
    h = x
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(zip(params.weights, params.biases)):
        # nn.Linear's addmm(bias, h, W^T) with a seed axis in front.
        h = batched_matmul(h, w.transpose(1, 2), b)
        if i < last:
            h = _hidden(params, h)
    return h


def forward_with_activations(params: MLPParams, x: torch.Tensor) -> Activations:
    """[x, relu(h1), ..., q]: every layer's input, plus the output, for the backward pass."""
    if params.kernels is not None:
        return params.kernels.forward_with_activations(params, x)
    acts = Activations([x])
    acts.norms = []
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(zip(params.weights, params.biases)):
        h = batched_matmul(acts[-1], w.transpose(1, 2), b)
        acts.append(_hidden(params, h, acts.norms) if i < last else h)
    return acts


def backward(params: MLPParams, acts: Activations, grad_q: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the loss w.r.t. every parameter, in MLPParams.tensors() order.

    grad_q is dLoss/dQ, shape (K, B, A). Per layer: dW = g^T h_in, db = sum_b g,
    dh_in = g W, then through the ReLU (zero where its output was not positive).
    """
    if params.kernels is not None:
        return params.kernels.backward(params, acts, grad_q)
    n_layers = len(params.weights)
    grads: list[torch.Tensor] = [None] * (2 * n_layers)  # type: ignore[list-item]
    g = grad_q
    for i in reversed(range(n_layers)):
        h_in = acts[i]
        grads[2 * i] = batched_matmul(g.transpose(1, 2), h_in)
        grads[2 * i + 1] = g.sum(1)
        if i > 0:
            g = batched_matmul(g, params.weights[i])
            # ReLU backward exactly as autograd does it: zero where the ReLU output was <= 0.
            g = torch.ops.aten.threshold_backward(g, h_in, 0)
            if params.layer_norm:
                # LayerNorm backward with ATen's own kernel (autograd's), from the saved statistics.
                z, mean, rstd = acts.norms[i - 1]
                g = torch.ops.aten.native_layer_norm_backward(
                    g, z, [z.shape[-1]], mean, rstd, None, None, [True, False, False]
                )[0]
    return grads


class BatchedAdam:
    """torch.optim.Adam (single-tensor path, no weight decay, no amsgrad) over the seed axis.

    All seeds share the step count because they update in lockstep; each has its own moments.
    """

    def __init__(self, params: MLPParams, lr: float | list[float], betas=(0.9, 0.999), eps: float = 1e-8):
        # lr: one learning rate, or one per seed (a variant family whose members differ).
        self.params = params.tensors()
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # (start, stop, lr) of each run of consecutive seeds with one learning rate.
        self._lr_runs = _runs(lr) if isinstance(lr, list) else []

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.step_count += 1
        step = self.step_count
        bias_correction1 = 1 - self.beta1**step
        bias_correction2 = 1 - self.beta2**step
        bias_correction2_sqrt = bias_correction2**0.5
        # The single-tensor update's operations, each applied to all parameters in one call:
        # elementwise results are the same, with a sixth of the Python overhead.
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        if not isinstance(self.lr, list):
            torch._foreach_addcdiv_(self.params, self.exp_avg, denom, value=-self.lr / bias_correction1)
            return
        # One learning rate per seed: the same addcdiv, in place, on each run of consecutive
        # seeds sharing a rate (a family's members hold consecutive seeds). addcdiv is elementwise
        # with one rounding order in its vector and scalar paths, so a slice computes what the
        # whole tensor would.
        for start, stop, lr in self._lr_runs:
            for p, m, d in zip(self.params, self.exp_avg, denom):
                p[start:stop].addcdiv_(m[start:stop], d[start:stop], value=-lr / bias_correction1)

    def reset_seeds(self, seed_mask: torch.Tensor) -> None:
        """Zero the moments of the seeds in seed_mask (a stopped seed)."""
        for m, v in zip(self.exp_avg, self.exp_avg_sq):
            m[seed_mask] = 0.0
            v[seed_mask] = 0.0


def _runs(values: list[float]) -> list[tuple[int, int, float]]:
    """(start, stop, value) of each maximal run of equal consecutive values."""
    runs: list[tuple[int, int, float]] = []
    for i, value in enumerate(values):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], i + 1, value)
        else:
            runs.append((i, i + 1, value))
    return runs


def global_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """Per-seed L2 norm over all gradients, (K,), as clip_grad_norm_ forms it: norm of norms."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
    return torch.linalg.vector_norm(norms, dim=1)


def clip_grads_(grads: list[torch.Tensor], norm: torch.Tensor, max_norm) -> None:
    """Scale each seed's gradients by min(1, max_norm / (norm + 1e-6)), as clip_grad_norm_.

    max_norm is a number, or one per seed (K,) with inf where a seed does not clip. Written as
    reciprocal() * max_norm because that is what `number / tensor` computes in torch
    (Tensor.__rtruediv__), and it rounds differently from a tensor / tensor division."""
    coef = torch.clamp((norm + 1e-6).reciprocal() * max_norm, max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
