"""The L-BFGS two-loop recursion of ``History.direction``, one victim at a time (numba).

Why: ``History`` keeps every victim's curvature pairs in two [R, cap, n]
buffers (64 victims x 100 pairs x 794 floats: 20 MB each on MNIST), and the
PyTorch form reads them four times per evaluation as batched products over
all victims, each pass streaming 20 MB through memory. Here one victim's
pairs (2 x 318 KB) are read for all four passes while they are in cache, and
the two triangular solves run on the same victim's [m, m] matrices.

Same arithmetic as the PyTorch form (``History.direction``'s docstring):
``upper al = rho s.q`` by back substitution, ``r0 = h (q - sum al_i y_i)``,
``lower c = al - rho y.r0`` by forward substitution, ``H g = r0 + sum c_i s_i``;
the new pair's column of ``upper`` and row of ``lower`` are written first.
Equal to it up to float32 rounding (``tests/attacks/test_batched.py``).
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is absent
    njit = None

AVAILABLE = njit is not None


def applies(buffer: torch.Tensor) -> bool:
    """Float32 buffers on the CPU, and numba present."""
    return AVAILABLE and buffer.dtype == torch.float32 and buffer.device.type == "cpu"


if AVAILABLE:

    @njit(cache=True)
    def _directions(idx, row, start, count, pushed, s_buf, y_buf, rho, upper, lower, h_diag, q0, y_new, out):
        """H q0 for victims ``idx`` (out [A, n]); a pushed victim's newest pair (age count - 1) enters the matrices."""
        cap = s_buf.shape[1]
        for a in range(idx.shape[0]):
            v = idx[a]
            m, first = count[v], start[v]
            if m == 0:
                out[a] = q0[a] * h_diag[v]
                continue
            s, y = s_buf[row[v]], y_buf[row[v]]
            sq = np.dot(s, q0[a])  # [cap], by ring slot
            if pushed[a]:
                sy = np.dot(s, y_new[a])
                pos = m - 1
                for i in range(pos):
                    k = sy[(first + i) % cap]
                    upper[v, i, pos] = rho[v, i] * k
                    lower[v, pos, i] = rho[v, pos] * k
                upper[v, pos, pos] = 1.0
                lower[v, pos, pos] = 1.0
            al = np.zeros(m, dtype=q0.dtype)
            for i in range(m - 1, -1, -1):  # upper al = rho s.q
                acc = rho[v, i] * sq[(first + i) % cap]
                for j in range(i + 1, m):
                    acc -= upper[v, i, j] * al[j]
                al[i] = acc
            by_slot = np.zeros(cap, dtype=q0.dtype)
            for i in range(m):
                by_slot[(first + i) % cap] = al[i]
            r0 = (q0[a] - np.dot(by_slot, y)) * h_diag[v]
            yr = np.dot(y, r0)
            c = np.zeros(m, dtype=q0.dtype)
            for i in range(m):  # lower c = al - rho y.r0
                acc = al[i] - rho[v, i] * yr[(first + i) % cap]
                for j in range(i):
                    acc -= lower[v, i, j] * c[j]
                c[i] = acc
            by_slot[:] = 0.0
            for i in range(m):
                by_slot[(first + i) % cap] = c[i]
            out[a] = r0 + np.dot(by_slot, s)


    @njit(cache=True)
    def _drop_oldest(idx, upper, lower, rho):
        """Age every pair of victims ``idx`` by one (the oldest leaves): shift the [M, M] matrices and rho up-left."""
        m = rho.shape[1]
        for v in idx:
            for name in range(2):
                mat = upper[v] if name == 0 else lower[v]
                for i in range(m - 1):
                    for j in range(m - 1):
                        mat[i, j] = mat[i + 1, j + 1]
                for i in range(m):  # the last row and column become the identity's
                    mat[i, m - 1] = 0.0
                    mat[m - 1, i] = 0.0
                mat[m - 1, m - 1] = 1.0
            for i in range(m - 1):
                rho[v, i] = rho[v, i + 1]
            rho[v, m - 1] = 0.0


def drop_oldest(history, idx: torch.Tensor) -> None:
    """``History._drop_oldest``'s shift of ``upper``, ``lower`` and ``rho`` for victims ``idx``, in place."""
    _drop_oldest(idx.numpy(), history.upper.numpy(), history.lower.numpy(), history.rho.numpy())


def directions(history, idx: torch.Tensor, q0: torch.Tensor, y_new: torch.Tensor, pushed: torch.Tensor) -> torch.Tensor:
    """``History.direction``'s recursion after the new pairs are stored: H q0 [A, n] for victims ``idx``.

    q0 = -g [A, n]; y_new [A, n] (rows of victims not pushed are ignored); pushed: bool [A].
    ``history``'s rho, upper and lower are updated in place (through numpy views of its tensors).
    """
    out = torch.empty_like(q0)
    _directions(idx.numpy(), history.row.numpy(), history.start.numpy(), history.count.numpy(), pushed.numpy(),
                history.s.numpy(), history.y.numpy(), history.rho.numpy(), history.upper.numpy(),
                history.lower.numpy(), history.h_diag.numpy(), q0.contiguous().numpy(),
                y_new.contiguous().numpy(), out.numpy())
    return out
