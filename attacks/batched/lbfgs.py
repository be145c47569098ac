"""``torch.optim.LBFGS`` (no line search) for V slots, each victim with its own state.

``BatchedLBFGS`` is ``torch.optim.LBFGS`` without line search (lr, max_iter =
max_eval, history 100, tolerance_grad 1e-7, tolerance_change 1e-9) written as a
per-victim state machine: a victim's evaluations happen in the same order at
the same points as in a one-at-a-time run; victims just leave their inner loop
at different ticks. Its two-loop recursion is solved in closed form on the
curvature pairs of ``History`` (big buffers never gathered; see there). Two
savings, both leaving the iterates unchanged: a victim stops at the first
evaluation of the step at which one-at-a-time ``optimise`` would stop (not
after that step's wasted inner evaluations), and when a step ends right after
an evaluation at an unprojected point, the next step's first evaluation (same
point) is reused, counted, not recomputed. The stop decisions themselves are
the shared ``StopRule``'s (``SlotProgress.step_start``).
"""

from __future__ import annotations

import torch

from attacks.batched import lbfgs_kernel
from attacks.batched.slots import Project, SlotProgress

HISTORY, TOL_GRAD, TOL_CHANGE = 100, 1e-7, 1e-9


class BatchedLBFGS:
    """Per-victim ``torch.optim.LBFGS`` (no line search); states live in [V, ...] tensors."""

    def __init__(self, x0: torch.Tensor, lr: float, max_iter: int, kernel: str = "auto") -> None:
        v, n = x0.shape
        self.lr, self.max_iter = lr, max_iter
        longs = {"dtype": torch.long, "device": x0.device}
        self.phase = torch.zeros(v, **longs)  # 0: next eval starts a step; 1: inner eval
        self.total, self.inner, self.step_evals = (torch.zeros(v, **longs) for _ in range(3))
        self.d, self.prev_g = torch.zeros_like(x0), torch.zeros_like(x0)
        self.t = x0.new_zeros(v)
        self.prev_loss = torch.zeros(v, dtype=torch.float64, device=x0.device)
        self.history = History(x0, kernel)

    def reset(self, slots: torch.Tensor, alive: torch.Tensor) -> None:
        """Fresh state (no step taken, empty history) for new victims in ``slots``;
        ``alive``: the other slots still running (their history rows are kept)."""
        self.phase[slots], self.total[slots], self.inner[slots], self.step_evals[slots] = 0, 0, 0, 0
        self.d[slots], self.prev_g[slots], self.t[slots], self.prev_loss[slots] = 0.0, 0.0, 0.0, 0.0
        self.history.reset(slots, alive)

    def after_eval(self, idx: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, x: torch.Tensor,
                   progress: SlotProgress, project: Project | None) -> None:
        """Advance each victim of ``idx`` from its new evaluation to its next one."""
        self.history.compact(torch.nonzero(~progress.done).flatten())
        lossd, inner = loss.double(), self.phase[idx] == 1
        starting, ended = ~inner, torch.zeros_like(inner)
        if bool(inner.any()):
            i = idx[inner]
            self.step_evals[i] += 1
            end = ((self.step_evals[i] >= self.max_iter) | (grad[inner].abs().amax(-1) <= TOL_GRAD)
                   | ((self.d[i] * self.t[i, None]).abs().amax(-1) <= TOL_CHANGE)
                   | ((lossd[inner] - self.prev_loss[i]).abs() < TOL_CHANGE))
            ended[inner] = end
            self._end_step(idx[ended], x, project)
            if project is None:  # the next step's first evaluation is this one: reuse it
                starting = starting | ended
                progress.evals[idx[ended]] += 1
        iterate = inner & ~ended
        begin = idx[starting]
        if len(begin):
            stop = progress.step_start(begin, lossd[starting], x[begin])
            self.step_evals[begin] = 1
            self.inner[begin] = 0
            flat = grad[starting].abs().amax(-1) <= TOL_GRAD
            self._end_step(begin[~stop & flat], x, project)
            iterate[starting] = ~stop & ~flat
        if bool(iterate.any()):
            self._iterate(idx[iterate], lossd[iterate], grad[iterate], x, project)

    def _end_step(self, idx: torch.Tensor, x: torch.Tensor, project: Project | None) -> None:
        self.phase[idx] = 0
        if project is not None and len(idx):
            x[idx] = project(idx, x[idx])

    def _iterate(self, idx: torch.Tensor, loss: torch.Tensor, g: torch.Tensor, x: torch.Tensor,
                 project: Project | None) -> None:
        """One pass of LBFGS's inner loop: direction, step length, move."""
        self.inner[idx] += 1
        self.total[idx] += 1
        first = self.total[idx] == 1
        later = idx[~first]
        d = -g
        if len(later):
            y = g[~first] - self.prev_g[later]
            s = self.d[later] * self.t[later, None]
            d[~first] = self.history.direction(later, g[~first], s, y)
        self.d[idx], self.prev_g[idx], self.prev_loss[idx] = d, g, loss
        t = g.new_full((len(idx),), self.lr)
        t[first] = torch.clamp(1.0 / g[first].abs().sum(-1), max=1.0) * self.lr
        self.t[idx] = t
        flat = (g * d).sum(-1) > -TOL_CHANGE
        self._end_step(idx[flat], x, project)  # no descent: the step ends without moving
        move = idx[~flat]
        x[move] = x[move] + t[~flat, None] * d[~flat]
        last = self.inner[move] == self.max_iter
        self._end_step(move[last], x, project)
        self.phase[move[~last]] = 1


class History:
    """Each victim's L-BFGS curvature pairs and its two-loop recursion H g.

    The pairs live in two buffers [R, cap, n] (s and y), a ring per row; row
    ``row[v]`` holds victim v. Only the small per-pair quantities are kept in
    age order (oldest first, victim-indexed): rho [V, M] and the two
    triangular matrices of the closed-form recursion (see ``direction``),
    [V, M, M] with M = HISTORY. So a new pair, a dropped oldest pair or a
    victim that finished never moves the big buffers: each evaluation reads
    them four times, as products [A, k, n] x [R, n, cap] in which the rows
    of victims not in the call get zeros. When half the rows belong to
    finished victims, the buffers are compacted once (``compact``). ``cap``
    grows from 4 to HISTORY on demand; no ring wraps before it is full, so
    growing is a zero pad. ``kernel='auto'`` runs the recursion through
    ``lbfgs_kernel`` (numba, one victim's pairs in cache at a time) on float32
    CPU buffers; 'torch' (or a GPU) the batched products below.
    """

    def __init__(self, x0: torch.Tensor, kernel: str = "auto") -> None:
        v, n = x0.shape
        self.fast = kernel == "auto" and lbfgs_kernel.applies(x0)  # the numba recursion (lbfgs_kernel)
        self.cap, self.row = 4, torch.arange(v, device=x0.device)
        self.s, self.y = x0.new_zeros(v, self.cap, n), x0.new_zeros(v, self.cap, n)
        self.rho, self.h_diag = x0.new_zeros(v, HISTORY), x0.new_ones(v)
        eye = torch.eye(HISTORY, dtype=x0.dtype, device=x0.device)
        self.upper = eye.repeat(v, 1, 1)  # [V, M, M]: I + rho_i s_i.y_j for j > i (age order)
        self.lower = eye.repeat(v, 1, 1)  # [V, M, M]: I + rho_i y_i.s_j for j < i
        self.start = torch.zeros(v, dtype=torch.long, device=x0.device)  # ring slot of the oldest pair
        self.count = torch.zeros_like(self.start)
        self._ordered = torch.arange(v, device=x0.device)  # rows 0..V-1, to test for the unpermuted case

    def reset(self, slots: torch.Tensor, alive: torch.Tensor) -> None:
        """Empty histories for new victims in ``slots``. A slot keeps its buffer
        row unless a running slot (``alive``) holds it since a compaction; then
        it gets a spare row or a new one. Rows are zeroed, so stale pairs of
        the previous victim never enter a product (even times a zero weight)."""
        used, held = set(self.row[alive].tolist()), set(self.row[slots].tolist())
        spare = [r for r in range(self.s.shape[0]) if r not in used and r not in held]
        for v in slots.tolist():
            own = int(self.row[v])
            if own in used:
                if not spare:  # grow the buffers by one row
                    spare.append(self.s.shape[0])
                    pad = self.s.new_zeros(1, *self.s.shape[1:])
                    self.s, self.y = torch.cat([self.s, pad]), torch.cat([self.y, pad])
                own = spare.pop(0)
                self.row[v] = own
            used.add(own)
            self.s[own], self.y[own] = 0.0, 0.0
        eye = torch.eye(HISTORY, dtype=self.upper.dtype, device=self.upper.device)
        self.upper[slots], self.lower[slots] = eye, eye
        self.rho[slots], self.h_diag[slots], self.start[slots], self.count[slots] = 0.0, 1.0, 0, 0

    def compact(self, alive: torch.Tensor) -> None:
        """Drop the buffer rows of finished victims once they are half of them (alive: sorted ids)."""
        if len(alive) and self.s.shape[0] >= max(8, 2 * len(alive)):
            keep = self.row[alive]
            self.s, self.y = self.s[keep], self.y[keep]
            self.row[alive] = torch.arange(len(alive), device=alive.device)

    def _dots(self, idx: torch.Tensor, vecs: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        """vecs [A, k, n] of victims ``idx`` (sorted) against every pair: [A, k, cap]."""
        rows = self.row[idx]
        if len(idx) == buf.shape[0] and bool((rows == self._ordered[:len(rows)]).all()):  # rows 0..R-1
            return vecs @ buf.transpose(1, 2)
        full = vecs.new_zeros(buf.shape[0], *vecs.shape[1:])
        full[rows] = vecs
        return (full @ buf.transpose(1, 2))[rows]

    def _combine(self, idx: torch.Tensor, coef: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        """sum_slot coef[a, slot] * buf[row(a), slot]: coef [A, cap] -> [A, n]."""
        rows = self.row[idx]
        if len(idx) == buf.shape[0] and bool((rows == self._ordered[:len(rows)]).all()):
            return (coef[:, None, :] @ buf).squeeze(1)
        full = coef.new_zeros(buf.shape[0], 1, self.cap)
        full[rows, 0] = coef
        return (full @ buf).squeeze(1)[rows]

    def _drop_oldest(self, idx: torch.Tensor) -> None:
        self.start[idx] = (self.start[idx] + 1) % self.cap
        self.count[idx] -= 1
        if self.fast:
            lbfgs_kernel.drop_oldest(self, idx)
            return
        for name in ("upper", "lower"):
            m = getattr(self, name)
            m[idx, :-1, :-1] = m[idx, 1:, 1:]
            m[idx, -1], m[idx, :, -1] = 0.0, 0.0
            m[idx, -1, -1] = 1.0
        self.rho[idx, :-1] = self.rho[idx, 1:]
        self.rho[idx, -1] = 0.0

    def direction(self, idx: torch.Tensor, g: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Store each victim's new pair (s, y) [A, n] when s.y > 1e-10, then return H g [A, n].

        With pairs oldest first, al_i = rho_i (s_i.q - sum_{j>i} (s_i.y_j) al_j)
        and c_i = al_i - be_i = al_i - rho_i (y_i.r0 + sum_{j<i} (y_i.s_j) c_j)
        are the two loops of the recursion written as triangular systems
        ``upper al = rho s.q`` and ``lower c = al - rho y.r0``; a new pair k
        adds column k to ``upper`` and row k to ``lower``, both from s_i.y_k.
        Positions beyond a victim's count have rho 0 and identity rows.
        """
        ys = (y * s).sum(-1)
        keep = ys > 1e-10
        pushed = idx[keep]
        if len(pushed) and int(self.count[pushed].max()) == self.cap < HISTORY:
            new = min(2 * self.cap, HISTORY)
            pad = self.s.new_zeros(self.s.shape[0], new - self.cap, self.s.shape[2])
            self.s, self.y, self.cap = torch.cat([self.s, pad], 1), torch.cat([self.y, pad], 1), new
        full = pushed[self.count[pushed] == HISTORY]
        if len(full):
            self._drop_oldest(full)
        pos = self.count[pushed]  # age position of each new pair
        rows = self.row[pushed]
        slot = (self.start[pushed] + pos) % self.cap
        self.s[rows, slot], self.y[rows, slot] = s[keep], y[keep]
        self.count[pushed] += 1
        self.h_diag[pushed] = ys[keep] / (y[keep] * y[keep]).sum(-1)
        rho_new = 1.0 / ys[keep]
        self.rho[pushed, pos] = rho_new
        q0 = -g
        if self.fast:  # the same recursion, one victim's pairs at a time in cache
            return lbfgs_kernel.directions(self, idx, q0, y, keep)
        depth = int(self.count[idx].max())
        if depth == 0:
            return q0 * self.h_diag[idx, None]
        ages = torch.arange(depth, device=g.device)
        slots = (self.start[idx, None] + ages) % self.cap  # [A, m] ring slot of each age
        # one read of s: s_i.y_new (for the new column/row) and s_i.q0, in age order
        dots = self._dots(idx, torch.stack([y * keep[:, None], q0], 1), self.s)  # [A, 2, cap]
        sy_new, sq = dots[:, 0].gather(1, slots), dots[:, 1].gather(1, slots)
        k = sy_new[keep]  # [P, m]: s_i . y_k by age
        before = ages[None, :] < pos[:, None]
        at = ages[None, :] == pos[:, None]
        rho_p = self.rho[pushed, :depth]
        self.upper[pushed[:, None], ages[None, :], pos[:, None]] = torch.where(before, rho_p * k, at.to(k))
        self.lower[pushed[:, None], pos[:, None], ages[None, :]] = torch.where(before, rho_new[:, None] * k, at.to(k))
        rho = self.rho[idx, :depth]
        upper, lower = self.upper[idx, :depth, :depth], self.lower[idx, :depth, :depth]
        al = torch.linalg.solve_triangular(upper, (rho * sq)[:, :, None], upper=True).squeeze(-1)
        by_slot = g.new_zeros(len(idx), self.cap).scatter_(1, slots, al)
        r0 = (q0 - self._combine(idx, by_slot, self.y)) * self.h_diag[idx, None]
        yr = self._dots(idx, r0[:, None, :], self.y)[:, 0].gather(1, slots)  # y_i . r0
        c = torch.linalg.solve_triangular(lower, (al - rho * yr)[:, :, None], upper=False).squeeze(-1)
        by_slot = g.new_zeros(len(idx), self.cap).scatter_(1, slots, c)
        return r0 + self._combine(idx, by_slot, self.s)
