"""Optimisers over V independent victims, each with its own state and stopping.

``drive`` is ``optimise.optimise`` run for V victims at once. Every victim keeps
its own bookkeeping (losses, best state, stall counter, status, reason) and its
own optimiser state, and only victims still running are evaluated: a tick is
one objective evaluation of every active victim, then each victim's own logic.

``BatchedLBFGS`` is ``torch.optim.LBFGS`` without line search (lr, max_iter =
max_eval, history 100, tolerance_grad 1e-7, tolerance_change 1e-9) written as a
per-victim state machine: a victim's evaluations happen in the same order at
the same points as in a one-at-a-time run; victims just leave their inner loop
at different ticks. Its two-loop recursion runs on a ring buffer of curvature
pairs [V, M, n]. Two savings, both leaving the iterates unchanged: a victim
stops at the first evaluation of the step at which one-at-a-time ``optimise``
would stop (not after that step's wasted inner evaluations), and when a step
ends right after an evaluation at an unprojected point, the next step's first
evaluation (same point) is reused, counted, not recomputed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from attacks.optimise import Trace

Evaluate = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Project = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (victim idx [A], x [A, n]) -> x
HISTORY, TOL_GRAD, TOL_CHANGE = 100, 1e-7, 1e-9


class Book:
    """``optimise``'s per-step decisions for V victims (see ``optimise.optimise``)."""

    def __init__(self, x0: torch.Tensor, iterations: int, tolerance: float, deadline: float,
                 stall_patience: int, keep_initial: bool) -> None:
        v = x0.shape[0]
        self.traces = [Trace(reason=f"{iterations} iterations spent") for _ in range(v)]
        self.best = x0.detach().clone()  # [V, n] state of the lowest loss so far
        self.step, self.unchanged, self.previous = [0] * v, [0] * v, [math.nan] * v
        self.done = torch.zeros(v, dtype=torch.bool, device=x0.device)
        self.iterations, self.tolerance, self.deadline = iterations, tolerance, deadline
        self.patience, self.keep_initial = stall_patience, keep_initial

    def step_start(self, idx: torch.Tensor, losses: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Record the loss at the start of each victim's step; bool [A]: which stop now."""
        stop = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        now = time.perf_counter()
        for a, (v, loss) in enumerate(zip(idx.tolist(), losses.tolist())):
            tr, step = self.traces[v], self.step[v]
            stop[a] = True
            if not math.isfinite(loss):
                tr.status, tr.reason = "diverged", f"non-finite matching loss ({loss}) at step {step}"
                continue
            tr.losses.append(loss)
            if (step > 0 or self.keep_initial) and loss < tr.best_loss:
                tr.best_loss = loss
                self.best[v] = x[a]
            if loss < self.tolerance:
                tr.status, tr.reason = "converged", f"matching loss {loss:.3g} < {self.tolerance:g} at step {step}"
                continue
            if step == self.iterations:
                continue
            tr.iterations += 1
            self.unchanged[v] = self.unchanged[v] + 1 if loss == self.previous[v] else 0
            self.previous[v] = loss
            if self.patience and self.unchanged[v] >= self.patience:
                tr.reason = f"stalled: loss unchanged for {self.unchanged[v]} steps at {loss:.4g}"
                continue
            if now > self.deadline:
                tr.reason = f"time budget spent after {tr.iterations} steps"
                continue
            self.step[v] += 1
            stop[a] = False
        self.done[idx[stop]] = True
        return stop


class Elementwise:
    """Adam (torch defaults: betas 0.9/0.999, eps 1e-8) or RMSprop (alpha 0.99,
    eps 1e-8, momentum) on flat per-victim states [V, n]; one evaluation per step."""

    def __init__(self, kind: str, x0: torch.Tensor, lr: float, momentum: float = 0.0) -> None:
        self.kind, self.lr, self.momentum = kind, lr, momentum
        self.m, self.s = torch.zeros_like(x0), torch.zeros_like(x0)
        self.count = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)

    def update(self, idx: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        m, s = self.m[idx], self.s[idx]
        if self.kind == "adam":
            self.count[idx] += 1
            step = self.count[idx].double()[:, None]
            m = m.lerp(g, 1 - 0.9)
            s = s * 0.999 + (1 - 0.999) * g * g
            step_size = (self.lr / (1 - 0.9 ** step)).to(x)
            denom = (s.sqrt() / ((1 - 0.999 ** step) ** 0.5).to(x)) + 1e-8
            x = x - step_size * m / denom
        else:  # rmsprop with momentum
            s = s * 0.99 + (1 - 0.99) * g * g
            m = m * self.momentum + g / (s.sqrt() + 1e-8)
            x = x - self.lr * m
        self.m[idx], self.s[idx] = m, s
        return x


def drive(x: torch.Tensor, evaluate: Evaluate, book: Book, optimiser: "BatchedLBFGS | Elementwise",
          project: Project | None) -> tuple[torch.Tensor, list[int]]:
    """Run every victim to its own stop; x [V, n] is updated in place.

    Returns the best state of each victim [V, n] and its evaluation count.
    ``project`` is the after-update projection (clamp 'step', Algorithm 2), or None.
    """
    evals = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    while not bool(book.done.all()):
        idx = torch.nonzero(~book.done).flatten()
        loss, grad = evaluate(idx, x[idx])
        evals[idx] += 1
        if isinstance(optimiser, BatchedLBFGS):
            optimiser.after_eval(idx, loss, grad, x, book, project, evals)
            continue
        stop = book.step_start(idx, loss.double(), x[idx])
        go = idx[~stop]
        if len(go):
            moved = optimiser.update(go, x[go], grad[~stop])
            x[go] = moved if project is None else project(go, moved)
    return book.best, evals.tolist()


class BatchedLBFGS:
    """Per-victim ``torch.optim.LBFGS`` (no line search); states live in [V, ...] tensors."""

    def __init__(self, x0: torch.Tensor, lr: float, max_iter: int) -> None:
        v, n = x0.shape
        self.lr, self.max_iter = lr, max_iter
        longs = {"dtype": torch.long, "device": x0.device}
        self.phase = torch.zeros(v, **longs)  # 0: next eval starts a step; 1: inner eval
        self.total, self.inner, self.evals = (torch.zeros(v, **longs) for _ in range(3))
        self.d, self.prev_g = torch.zeros_like(x0), torch.zeros_like(x0)
        self.t, self.h_diag = x0.new_zeros(v), x0.new_ones(v)
        self.prev_loss = torch.zeros(v, dtype=torch.float64, device=x0.device)
        self.cap = 4  # ring capacity, grown up to HISTORY on demand (memory: [V, cap, n] twice)
        self.s = x0.new_zeros(v, self.cap, n)
        self.y, self.rho = torch.zeros_like(self.s), x0.new_zeros(v, self.cap)
        self.gram = x0.new_zeros(v, self.cap, self.cap)  # [V, cap, cap]: s_i . y_j by ring slot
        self.start, self.count = torch.zeros(v, **longs), torch.zeros(v, **longs)

    def after_eval(self, idx: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, x: torch.Tensor,
                   book: Book, project: Project | None, evals: torch.Tensor) -> None:
        """Advance each victim of ``idx`` from its new evaluation to its next one."""
        lossd, inner = loss.double(), self.phase[idx] == 1
        starting, ended = ~inner, torch.zeros_like(inner)
        if bool(inner.any()):
            i = idx[inner]
            self.evals[i] += 1
            end = ((self.evals[i] >= self.max_iter) | (grad[inner].abs().amax(-1) <= TOL_GRAD)
                   | ((self.d[i] * self.t[i, None]).abs().amax(-1) <= TOL_CHANGE)
                   | ((lossd[inner] - self.prev_loss[i]).abs() < TOL_CHANGE))
            ended[inner] = end
            self._end_step(idx[ended], x, project)
            if project is None:  # the next step's first evaluation is this one: reuse it
                starting = starting | ended
                evals[idx[ended]] += 1
        iterate = inner & ~ended
        begin = idx[starting]
        if len(begin):
            stop = book.step_start(begin, lossd[starting], x[begin])
            self.evals[begin] = 1
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
        if len(later):
            y = g[~first] - self.prev_g[later]
            s = self.d[later] * self.t[later, None]
            ys = (y * s).sum(-1)
            keep = ys > 1e-10
            self._push(later[keep], y[keep], s[keep], ys[keep])
        d = -g
        if len(later):
            d[~first] = self._two_loop(later, g[~first])
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

    def _push(self, idx: torch.Tensor, y: torch.Tensor, s: torch.Tensor, ys: torch.Tensor) -> None:
        """Append a curvature pair per victim, dropping its oldest when full."""
        if len(idx) and int(self.count[idx].max()) == self.cap < HISTORY:
            self._grow()
        full = self.count[idx] == HISTORY
        slot = (self.start[idx] + self.count[idx]) % self.cap
        self.s[idx, slot], self.y[idx, slot], self.rho[idx, slot] = s, y, 1.0 / ys
        self.gram[idx, slot] = (self.y @ self._all(idx, s)[:, :, None]).squeeze(-1)[idx]  # s_new . y_j
        self.gram[idx, :, slot] = (self.s @ self._all(idx, y)[:, :, None]).squeeze(-1)[idx]  # s_i . y_new
        self.start[idx[full]] = (self.start[idx[full]] + 1) % self.cap
        self.count[idx[~full]] += 1
        self.h_diag[idx] = ys / (y * y).sum(-1)

    def _grow(self) -> None:
        """Double the ring capacity, re-laying every victim's pairs oldest-first."""
        cap, new = self.cap, min(2 * self.cap, HISTORY)
        order = (self.start[:, None] + torch.arange(cap, device=self.start.device)) % cap  # [V, cap]
        n = self.s.shape[-1]
        for name in ("s", "y", "rho"):
            old = getattr(self, name)
            index = order if old.dim() == 2 else order[..., None].expand(-1, -1, n)
            grown = old.new_zeros(old.shape[0], new, *old.shape[2:])
            grown[:, :cap] = old.gather(1, index)
            setattr(self, name, grown)
        g = self.gram.new_zeros(self.gram.shape[0], new, new)
        g[:, :cap, :cap] = self.gram[torch.arange(len(order), device=order.device)[:, None, None],
                                     order[:, :, None], order[:, None, :]]
        self.gram = g
        self.start.zero_()
        self.cap = new

    def _all(self, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """rows [A, n] of victims ``idx`` placed in a zero [V, n] tensor (products with
        the whole history then need no copy of it; other victims' rows are discarded)."""
        full = rows.new_zeros(self.s.shape[0], rows.shape[-1])
        full[idx] = rows
        return full

    def _two_loop(self, idx: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """H g for each victim: the two-loop recursion, solved in closed form.

        With pairs oldest first, al_i = rho_i (s_i.q - sum_{j>i} (s_i.y_j) al_j)
        and c_i = al_i - be_i = al_i - rho_i (y_i.r0 + sum_{j<i} (y_i.s_j) c_j)
        are two triangular systems in the Gram matrix S Y^T (kept up to date in
        ``_push``): the same recursion without a Python loop over 100 pairs.
        Entries beyond a victim's count get rho 0 and change nothing.
        """
        count, depth = self.count[idx], int(self.count[idx].max())
        slots = (self.start[idx, None] + torch.arange(depth, device=g.device)) % self.cap  # [A, m] oldest first
        rows = idx[:, None]
        rho = torch.where(torch.arange(depth, device=g.device) < count[:, None], self.rho[rows, slots], 0.0)
        sy = self.gram[rows[:, :, None], slots[:, :, None], slots[:, None, :]]  # [A, m, m]: s_i . y_j
        eye = torch.eye(depth, dtype=g.dtype, device=g.device)
        q0 = -g
        sq = (self.s @ self._all(idx, q0)[:, :, None]).squeeze(-1)[rows, slots]  # [A, m]: s_i . q0
        upper = eye + rho[:, :, None] * sy.triu(1)
        al = torch.linalg.solve_triangular(upper, (rho * sq)[:, :, None], upper=True).squeeze(-1)
        by_slot = g.new_zeros(self.s.shape[0], self.cap)
        by_slot[rows, slots] = al
        r0 = (q0 - (by_slot[:, None, :] @ self.y).squeeze(1)[idx]) * self.h_diag[idx, None]
        yr = (self.y @ self._all(idx, r0)[:, :, None]).squeeze(-1)[rows, slots]  # [A, m]: y_i . r0
        lower = eye + rho[:, :, None] * sy.transpose(1, 2).tril(-1)
        c = torch.linalg.solve_triangular(lower, (al - rho * yr)[:, :, None], upper=False).squeeze(-1)
        by_slot.zero_()
        by_slot[rows, slots] = c
        return r0 + (by_slot[:, None, :] @ self.s).squeeze(1)[idx]
