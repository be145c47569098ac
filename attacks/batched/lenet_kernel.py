"""LeNet's gradient-matching loss and its input gradient, written out per victim (numba).

Why: the stacked PyTorch form (``fedsnn.task.models.stacked``) runs V
victims as grouped convolutions and differentiates the weight gradient with
autograd's double backward. On this CPU that plateaus at ~0.5-1 ms per
victim-evaluation, ~10 GFLOP/s, because oneDNN's grouped kernels run one tiny
convolution per group and every step round-trips im2col tensors of all V
victims through memory (bench/README.md, issue 17). Here one victim at a time
goes through the whole chain with its activations and patch matrices in
cache, and every convolution is one small GEMM (BLAS through numba's np.dot).

The chain, for one sample (B = 1) of shape [C, H, W], soft label p [K] and
squared-L2 matching against the observed gradient g* (REFERENCE.md section 3)::

    forward   a0 = x;  z_l = W_l * a_{l-1} + b_l;  a_l = sigmoid(z_l)   (l = 1..3)
              o = W_f a3 + b_f;  q = softmax(o)
    backward  e = q sum(p) - p;  g_f = e a3^T;  delta3 = (W_f^T e) a3 (1 - a3)
              g_l = delta_l (x) patches(a_{l-1});  delta_{l-1} = (W_l^T delta_l) a (1 - a)
    loss      L = sum_l ||g_l - g*_l||^2
    adjoint   dL/dx and dL/dp by reverse mode through both passes above

(the adjoint is written step by step in ``_victim``). Gradients are exact up
to float32 rounding; ``tests/attacks/test_lenet_kernel.py`` checks them
against the autograd double backward of ``StackedMatcher``.

Used by ``attacks.batched.matcher.StackedMatcher`` when ``applies`` holds
(LeNet, static images, one sample per victim); anything else, or a machine
where numba is missing, runs the PyTorch form. The first call on a machine
compiles the kernel (~30-50 s of CPU); numba caches it beside this file
(``cache=True``), so later processes load it in about a second.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is absent
    njit = None

# LeNet's 5x5 convolutions, padding 2, strides (2, 2, 1) (fedsnn.task.models.lenet), written into ``_victim``;
# the equality tests against the PyTorch form fail if LeNet changes.
K, PAD = 5, 2
AVAILABLE = njit is not None
ONE, TWO = np.float32(1.0), np.float32(2.0)  # float32 literals: numba widens float32 arrays with Python floats


def applies(spec_name: str, kind: str, batch: int, tensors: dict[str, torch.Tensor]) -> bool:
    """Whether the kernel computes this matcher's loss: LeNet, images, B = 1, all 8 tensors matched,
    float32 on the CPU (``tensors``: the victims' weights and observed gradients by name)."""
    names = {f"{layer}.{part}" for layer in ("conv1", "conv2", "conv3", "fc") for part in ("weight", "bias")}
    return (AVAILABLE and spec_name == "lenet" and kind == "image" and batch == 1 and set(tensors) == names
            and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors.values()))


if AVAILABLE:

    @njit(cache=True)
    def _im2col(a, stride, ho, wo):
        """a [C, H, W] -> patches [C*K*K, ho*wo] (zero padding PAD)."""
        c, h, w = a.shape
        cols = np.zeros((c * K * K, ho * wo), dtype=a.dtype)
        for ci in range(c):
            for ki in range(K):
                for kj in range(K):
                    row = (ci * K + ki) * K + kj
                    for i in range(ho):
                        y = i * stride + ki - PAD
                        if y < 0 or y >= h:
                            continue
                        for j in range(wo):
                            xx = j * stride + kj - PAD
                            if 0 <= xx < w:
                                cols[row, i * wo + j] = a[ci, y, xx]
        return cols

    @njit(cache=True)
    def _col2im(cols, c, h, w, stride, ho, wo):
        """The adjoint of ``_im2col``: patches [C*K*K, ho*wo] summed back into [C, H, W].

        The same index map as ``_im2col``, written out twice on purpose: one shared
        loop with the direction as a flag made the whole kernel 1.7x slower
        (0.60 vs 0.34 ms per victim-evaluation, 2026-12-03).
        """
        out = np.zeros((c, h, w), dtype=cols.dtype)
        for ci in range(c):
            for ki in range(K):
                for kj in range(K):
                    row = (ci * K + ki) * K + kj
                    for i in range(ho):
                        y = i * stride + ki - PAD
                        if y < 0 or y >= h:
                            continue
                        for j in range(wo):
                            xx = j * stride + kj - PAD
                            if 0 <= xx < w:
                                out[ci, y, xx] += cols[row, i * wo + j]
        return out

    @njit(cache=True)
    def _squares(r):
        """sum(r ** 2) accumulated in float64: a float32 running sum over ~10^4 terms drifts by ~1e-4."""
        total = 0.0
        for value in r.ravel():
            total += np.float64(value) * np.float64(value)
        return total

    @njit(cache=True)
    def _sigmoid(z):
        return ONE / (ONE + np.exp(-z))

    @njit(cache=True)
    def _victim(w1, b1, w2, b2, w3, b3, wf, bf, t1, tb1, t2, tb2, t3, tb3, tf, tbf, x, p):
        """One victim: matching loss, dL/dx [C, H, W], dL/dp [K].

        w_l [O, C*K*K] (flattened conv weights), b_l [O], wf [K, F], bf [K];
        t_* the observed gradient in the same shapes; x [C, H, W]; p [K].
        """
        c0, h0, w0 = x.shape
        o1, o2, o3 = w1.shape[0], w2.shape[0], w3.shape[0]
        h1, v1 = (h0 - 1) // 2 + 1, (w0 - 1) // 2 + 1
        h2, v2 = (h1 - 1) // 2 + 1, (v1 - 1) // 2 + 1
        h3, v3 = h2, v2
        # forward
        cols0 = _im2col(x, 2, h1, v1)
        a1 = _sigmoid(np.dot(w1, cols0) + b1.reshape(-1, 1))  # [O1, P1]
        cols1 = _im2col(a1.reshape(o1, h1, v1), 2, h2, v2)
        a2 = _sigmoid(np.dot(w2, cols1) + b2.reshape(-1, 1))  # [O2, P2]
        cols2 = _im2col(a2.reshape(o2, h2, v2), 1, h3, v3)
        a3 = _sigmoid(np.dot(w3, cols2) + b3.reshape(-1, 1))  # [O3, P3]
        a3f = a3.ravel()
        o = np.dot(wf, a3f) + bf
        q = np.exp(o - o.max())
        q /= q.sum()
        s = p.sum()
        # backward: the client's gradient of soft cross-entropy
        e = q * s - p
        gf = np.outer(e, a3f)
        u3 = np.dot(wf.T, e).reshape(o3, h3 * v3)
        sp3 = a3 * (ONE - a3)
        d3 = u3 * sp3
        g3 = np.dot(d3, cols2.T)
        dd2 = _col2im(np.dot(w3.T, d3), o2, h2, v2, 1, h3, v3).reshape(o2, h2 * v2)
        sp2 = a2 * (ONE - a2)
        d2 = dd2 * sp2
        g2 = np.dot(d2, cols1.T)
        dd1 = _col2im(np.dot(w2.T, d2), o1, h1, v1, 2, h2, v2).reshape(o1, h1 * v1)
        sp1 = a1 * (ONE - a1)
        d1 = dd1 * sp1
        g1 = np.dot(d1, cols0.T)
        # the matching loss and its residuals R = dL/dg
        r1, rb1 = g1 - t1, d1.sum(axis=1) - tb1
        r2, rb2 = g2 - t2, d2.sum(axis=1) - tb2
        r3, rb3 = g3 - t3, d3.sum(axis=1) - tb3
        rf, rbf = gf - tf, e - tbf
        loss = (_squares(r1) + _squares(rb1) + _squares(r2) + _squares(rb2)
                + _squares(r3) + _squares(rb3) + _squares(rf) + _squares(rbf))
        r1, rb1, r2, rb2, r3, rb3, rf, rbf = TWO * r1, TWO * rb1, TWO * r2, TWO * rb2, TWO * r3, TWO * rb3, TWO * rf, TWO * rbf
        # adjoint of the backward pass, last step first (bar_v = dL/dv)
        bar_d1 = np.dot(r1, cols0) + rb1.reshape(-1, 1)  # g1 = d1 patches(a0)^T, gb1 = sum d1
        bar_a1 = bar_d1 * dd1 * (ONE - TWO * a1)  # d1 = dd1 sp1(a1)
        bar_dd1 = bar_d1 * sp1
        bar_d2 = np.dot(w2, _im2col(bar_dd1.reshape(o1, h1, v1), 2, h2, v2))  # dd1 = col2im(w2^T d2)
        bar_d2 += np.dot(r2, cols1) + rb2.reshape(-1, 1)
        bar_cols1 = np.dot(r2.T, d2)  # g2's dependence on a1's patches
        bar_a2 = bar_d2 * dd2 * (ONE - TWO * a2)
        bar_dd2 = bar_d2 * sp2
        bar_d3 = np.dot(w3, _im2col(bar_dd2.reshape(o2, h2, v2), 1, h3, v3))
        bar_d3 += np.dot(r3, cols2) + rb3.reshape(-1, 1)
        bar_cols2 = np.dot(r3.T, d3)
        bar_a3 = bar_d3 * u3 * (ONE - TWO * a3)
        bar_u3 = (bar_d3 * sp3).ravel()
        bar_e = np.dot(wf, bar_u3) + np.dot(rf, a3f) + rbf
        bar_a3f = bar_a3.ravel() + np.dot(rf.T, e)
        bar_p = (bar_e * q).sum() - bar_e  # e = q sum(p) - p
        bar_q = bar_e * s
        bar_o = q * (bar_q - (bar_q * q).sum())
        # adjoint of the forward pass
        bar_a3f += np.dot(wf.T, bar_o)
        bar_z3 = bar_a3f.reshape(o3, h3 * v3) * sp3
        bar_cols2 += np.dot(w3.T, bar_z3)
        bar_a2 += _col2im(bar_cols2, o2, h2, v2, 1, h3, v3).reshape(o2, h2 * v2)
        bar_z2 = bar_a2 * sp2
        bar_cols1 += np.dot(w2.T, bar_z2)
        bar_a1 += _col2im(bar_cols1, o1, h1, v1, 2, h2, v2).reshape(o1, h1 * v1)
        bar_z1 = bar_a1 * sp1
        bar_cols0 = np.dot(r1.T, d1) + np.dot(w1.T, bar_z1)
        bar_x = _col2im(bar_cols0, c0, h0, w0, 2, h1, v1)
        return loss, bar_x, bar_p

    @njit(cache=True)
    def _victims(rows, w1, b1, w2, b2, w3, b3, wf, bf, t1, tb1, t2, tb2, t3, tb3, tf, tbf, x, p):
        """``_victim`` for dummy a against weights/targets row ``rows[a]``: losses [A], dL/dx [A, C, H, W], dL/dp [A, K]."""
        n = x.shape[0]
        losses = np.zeros(n, dtype=x.dtype)
        gx = np.zeros_like(x)
        gp = np.zeros_like(p)
        for a in range(n):
            v = rows[a]
            losses[a], gx[a], gp[a] = _victim(w1[v], b1[v], w2[v], b2[v], w3[v], b3[v], wf[v], bf[v],
                                              t1[v], tb1[v], t2[v], tb2[v], t3[v], tb3[v], tf[v], tbf[v],
                                              x[a], p[a])
        return losses, gx, gp


def flat_weights(tensors: dict[str, torch.Tensor]) -> tuple[np.ndarray, ...]:
    """name -> [V, ...] weights (or observed gradients) as the kernel's 8 contiguous float32 arrays."""
    out = []
    for layer in ("conv1", "conv2", "conv3", "fc"):
        w = tensors[f"{layer}.weight"].detach()
        out += [np.ascontiguousarray(w.reshape(w.shape[0], w.shape[1], -1).numpy(), dtype=np.float32),
                np.ascontiguousarray(tensors[f"{layer}.bias"].detach().numpy(), dtype=np.float32)]
    return tuple(out)


class _MatchingLoss(torch.autograd.Function):
    """Losses [A] of dummies x [A, 1, C, H, W] and labels probs [A, 1, K]; backward returns the kernel's gradients."""

    @staticmethod
    def forward(ctx, x, probs, rows, weights, targets):  # type: ignore[override]
        losses, gx, gp = _victims(rows, *weights, *targets, np.ascontiguousarray(x.detach()[:, 0].numpy()),
                                  np.ascontiguousarray(probs.detach()[:, 0].numpy()))
        ctx.save_for_backward(torch.from_numpy(gx).unsqueeze(1), torch.from_numpy(gp).unsqueeze(1))
        return torch.from_numpy(losses)

    @staticmethod
    def backward(ctx, grad_losses):  # type: ignore[override]
        gx, gp = ctx.saved_tensors
        scale = grad_losses.view(-1, 1, 1)
        return gx * scale[..., None, None], gp * scale, None, None, None


def matching_loss(x: torch.Tensor, probs: torch.Tensor, rows: torch.Tensor, weights: tuple[np.ndarray, ...],
                  targets: tuple[np.ndarray, ...]) -> torch.Tensor:
    """L_G per victim [A] with its gradient to x [A, 1, C, H, W] and probs [A, 1, K] (first order only).

    weights / targets: ``flat_weights`` of all slots' global weights and observed gradients ([V, ...]);
    dummy a is matched against row ``rows[a]``. x and probs must be float32.
    """
    return _MatchingLoss.apply(x, probs, rows.numpy().astype(np.int64), weights, targets)
