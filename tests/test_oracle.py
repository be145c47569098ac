"""QueryOracle: counting, budget, detached outputs, no module reachable by attribute."""

import pytest
import torch
from torch import nn

from attacks.blackbox import QueryBudgetExhausted, QueryOracle, oracle_for_classifier, oracle_for_target
from fedsnn.task.models import TargetSpec, build_target


def _oracle(budget: int | None = None) -> QueryOracle:
    return oracle_for_target(build_target(TargetSpec("snn", (1, 4, 4), 3, hidden=20, timesteps=4)), budget)


def test_counts_samples_and_enforces_budget() -> None:
    oracle = _oracle(budget=10)
    assert oracle.query(torch.rand(4, 1, 4, 4)).shape == (4, 3)
    oracle.predict(torch.rand(4, 1, 4, 4))
    assert oracle.used == 8 and oracle.remaining == 2
    with pytest.raises(QueryBudgetExhausted) as err:
        oracle.query(torch.rand(3, 1, 4, 4))
    assert err.value.used == 8 and err.value.requested == 3
    assert oracle.used == 8  # a refused batch costs nothing
    oracle.query(torch.rand(2, 1, 4, 4))
    assert oracle.remaining == 0


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        _oracle().query(torch.rand(2, 1, 5, 5))


def test_outputs_detached_even_for_grad_inputs() -> None:
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    scores = _oracle().query(x * 1.0)
    assert not scores.requires_grad and scores.grad_fn is None
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    scores = oracle_for_classifier(model, (1, 4, 4), 3).query(x * 1.0)
    assert not scores.requires_grad and torch.allclose(scores.sum(-1), torch.ones(2))


def _reachable(obj: object, depth: int = 0, seen: set | None = None) -> list[object]:
    """Everything reachable by attribute / item access (not closures or globals)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    found = [obj]
    children: list[object] = []
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    else:
        names = list(getattr(obj, "__dict__", {})) + list(getattr(type(obj), "__slots__", ()))
        names += [n for n in dir(obj) if not n.startswith("__")]
        for name in ("__self__", "__wrapped__", "__func__", "__dict__"):
            names.append(name)
        for name in set(names):
            try:
                children.append(getattr(obj, name))
            except Exception:
                continue
    for child in children:
        if not isinstance(child, (type, type(torch))):
            found += _reachable(child, depth + 1, seen)
    return found


@pytest.mark.parametrize("factory", ["target", "classifier"])
def test_no_module_or_parameter_reachable(factory: str) -> None:
    if factory == "target":
        oracle = _oracle()
    else:
        oracle = oracle_for_classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), (1, 4, 4), 3)
    for obj in _reachable(oracle):
        assert not isinstance(obj, (nn.Module, nn.Parameter))
        assert not (isinstance(obj, torch.Tensor) and (obj.requires_grad or obj.numel() > 16))
