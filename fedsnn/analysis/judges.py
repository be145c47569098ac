"""Judge models: the semantic observer whose accuracy on reconstructions is the ASR.

A judge is a classifier trained on the real training split of a dataset; the
attack success rate (ASR) is its accuracy on reconstructed samples, scored
against the true labels (FL-SNN paper, Section IV, Table II)::

    mnist, cifar100, att-faces : LeNet-style CNN (ReLU, PyTorch init, Adam)
    lfw                        : small ResNet trained from scratch with flips and
                                 +-2 px shifts (no ImageNet weights offline)
    dvs-gesture                : residual spiking CNN (Table I), SpikingJelly
                                 multi-step LIF + ATan, time-averaged logits
    nmnist                     : the same spiking CNN, narrower (width 4)

Judges are cached under ``cache_dir`` as ``<dataset>-<key>.pt`` (torch.save of a
dict of plain types and tensors, loaded with ``weights_only=True``) beside a
``.json`` with the test accuracy and how it was trained. The key hashes the
dataset, the resolved data_dir ('' = embedded MNIST sample), the image size
(images) or timesteps (events) and the seed (LFW's split depends on it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fedsnn.task.data import EVENT_DATASETS, LabelledData, Split, load_dataset
from fedsnn.errors import DataNotFoundError
from fedsnn.analysis.judge_nets import ARCHS, DVSGestureSNN, FaceResNet, LeNetJudge, build_judge_model
from fedsnn.analysis.metrics import Judge
from fedsnn.provenance import provenance

__all__ = ["ARCHS", "DEFAULT_CACHE", "DVSGestureSNN", "FaceResNet", "LeNetJudge", "ModelJudge", "RECIPES", "Recipe",
           "build_judge_model", "cache_paths", "fit_judge", "load_checkpoint", "load_judge", "train_judge"]

DEFAULT_CACHE = Path(os.environ.get("FEDSNN_CACHE", "~/.cache/fedsnn")).expanduser() / "judges"


@dataclass(frozen=True)
class Recipe:
    """How a judge is built and trained. width = 0 keeps the architecture's default."""

    arch: str
    epochs: int
    lr: float = 1e-3
    batch_size: int = 64
    augment: bool = False
    max_seconds: float | None = None
    width: int = 0


RECIPES = {
    "mnist": Recipe("lenet", 3),
    "cifar100": Recipe("lenet", 20, augment=True),
    "lfw": Recipe("resnet", 30, lr=2e-3, augment=True),
    "att-faces": Recipe("lenet", 60),
    "dvs-gesture": Recipe("dvs-snn", 30, batch_size=16),
    # N-MNIST (34x34, 10 digits): the same spiking CNN at width 4, a few epochs: CPU-sized
    "nmnist": Recipe("dvs-snn", 3, lr=3e-3, batch_size=8, width=4),
}
EMBEDDED_MNIST = replace(RECIPES["mnist"], epochs=20, max_seconds=30.0)  # the ~30 s CPU judge


class ModelJudge:
    """The Judge callable: samples [B, C, H, W] or events [B, T, C, H, W] -> logits [B, K], no grad."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.events = isinstance(model, DVSGestureSNN)

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples.float()
        return self.model(x.transpose(0, 1) if self.events else x)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-2 pixel translation (zero padded) of images [B, C, H, W]."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    padded = F.pad(x, (2, 2, 2, 2))
    return padded[..., 2 + dy : 2 + dy + x.shape[-2], 2 + dx : 2 + dx + x.shape[-1]]


@torch.no_grad()
def accuracy(judge: Judge, data: LabelledData, batch_size: int = 256) -> float:
    """Fraction of ``data`` the judge classifies correctly."""
    correct = sum(int((judge(data.samples[i : i + batch_size]).argmax(-1) == data.labels[i : i + batch_size]).sum())
                  for i in range(0, len(data), batch_size))
    return correct / max(len(data), 1)


def fit_judge(split: Split, recipe: Recipe, seed: int = 0, log: bool = False) -> tuple[nn.Module, float, dict]:
    """Train a judge of ``recipe`` on ``split.train`` (Adam, cosine schedule, cross-entropy).

    Returns the model (eval mode), its test accuracy and facts about training.
    """
    torch.manual_seed(seed)
    train = split.train
    model = build_judge_model(recipe.arch, train.input_shape[0], train.num_classes, recipe.width)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, recipe.epochs * steps_per_epoch)
    generator, start, epochs_run = torch.Generator().manual_seed(seed), time.perf_counter(), 0
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        for i in range(0, len(train), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            x, y = train.samples[idx], train.labels[idx]
            x = _augment(x, generator) if recipe.augment else x
            loss = F.cross_entropy(model(x.transpose(0, 1) if train.is_event else x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        epochs_run = epoch + 1
        if log:
            print(f"epoch {epochs_run}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if recipe.max_seconds is not None and time.perf_counter() - start > recipe.max_seconds:
            break
    model.eval()
    wall = time.perf_counter() - start
    return model, accuracy(ModelJudge(model), split.test), {"epochs_run": epochs_run, "wall_time_s": wall}


def recipe_for(dataset: str, data_dir: str) -> Recipe:
    if dataset not in RECIPES:
        raise ValueError(f"no judge recipe for {dataset!r}; expected one of {tuple(RECIPES)}")
    return EMBEDDED_MNIST if dataset == "mnist" and not data_dir else RECIPES[dataset]


def cache_paths(dataset: str, data_dir: str, image_size: int, timesteps: int, seed: int,
                cache_dir: str | Path) -> tuple[Path, Path]:
    """(checkpoint .pt, metadata .json) for one judge identity (module docstring)."""
    resolved = str(Path(data_dir).expanduser().resolve()) if data_dir else ""
    size_key = {"timesteps": timesteps} if dataset in EVENT_DATASETS else {"image_size": image_size}
    identity = json.dumps({"dataset": dataset, "data_dir": resolved, "seed": seed, **size_key}, sort_keys=True)
    stem = f"{dataset}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    folder = Path(cache_dir).expanduser()
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def train_judge(dataset: str, data_dir: str = "", image_size: int = 0, timesteps: int = 20, seed: int = 0,
                cache_dir: str | Path = DEFAULT_CACHE, recipe: Recipe | None = None,
                log: bool = False) -> tuple[nn.Module, float]:
    """Train the judge of ``dataset``, save it to the cache and return (model, test accuracy)."""
    recipe = recipe or recipe_for(dataset, data_dir)
    split = load_dataset(dataset, data_dir, image_size, timesteps, seed)
    model, acc, facts = fit_judge(split, recipe, seed, log)
    checkpoint, meta = cache_paths(dataset, data_dir, image_size, timesteps, seed, cache_dir)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state = {"arch": recipe.arch, "in_channels": split.train.input_shape[0],
             "num_classes": split.train.num_classes, "width": recipe.width, "state_dict": model.state_dict()}
    tmp = checkpoint.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, checkpoint)  # atomic: a concurrent reader never sees half a file
    meta.write_text(json.dumps({
        "dataset": dataset, "data_dir": data_dir, "image_size": image_size, "timesteps": timesteps, "seed": seed,
        "test_accuracy": acc, "train_size": len(split.train), "test_size": len(split.test),
        "input_shape": list(split.train.input_shape), "recipe": asdict(recipe), "epochs": facts["epochs_run"],
        "wall_time_s": facts["wall_time_s"], **provenance()}, indent=2, default=str) + "\n")
    return model, acc


def load_checkpoint(path: Path) -> nn.Module:
    """A judge network from a checkpoint written by ``train_judge`` (weights_only load)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_judge_model(state["arch"], state["in_channels"], state["num_classes"], state["width"])
    model.load_state_dict(state["state_dict"])
    return model.eval()


def load_judge(dataset: str, data_dir: str = "", image_size: int = 0, timesteps: int = 20, seed: int = 0,
               cache_dir: str | Path = DEFAULT_CACHE, train_if_missing: bool = True) -> Judge | None:
    """The judge of ``dataset`` from the cache, trained first if missing and allowed.

    Returns a callable images [B, C, H, W] (or events [B, T, C, H, W]) -> logits
    [B, K] in eval mode without grad, or None when no checkpoint exists and it
    cannot be trained (not allowed, or the dataset's files are absent).
    """
    checkpoint, _ = cache_paths(dataset, data_dir, image_size, timesteps, seed, cache_dir)
    if checkpoint.exists():
        return ModelJudge(load_checkpoint(checkpoint))
    if not train_if_missing:
        return None
    try:
        model, _ = train_judge(dataset, data_dir, image_size, timesteps, seed, cache_dir)
    except DataNotFoundError:
        return None
    return ModelJudge(model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedsnn.analysis.judges", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train"])
    parser.add_argument("--dataset", required=True, choices=tuple(RECIPES))
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--image-size", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="0 = the recipe's")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("FEDSNN_THREADS", "1")))
    recipe = recipe_for(args.dataset, args.data_dir)
    recipe = replace(recipe, epochs=args.epochs) if args.epochs else recipe
    _, acc = train_judge(args.dataset, args.data_dir, args.image_size, args.timesteps, args.seed,
                         args.cache_dir, recipe, log=True)
    print(f"{args.dataset} judge ({recipe.arch}) test accuracy: {100 * acc:.2f}%")
    print(f"saved to {cache_paths(args.dataset, args.data_dir, args.image_size, args.timesteps, args.seed, args.cache_dir)[0]}")


if __name__ == "__main__":
    main()
