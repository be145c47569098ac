"""Judge models: the semantic observer whose accuracy on reconstructions is the ASR.

A judge is a classifier trained on the real training split of a dataset; the
attack success rate (ASR) is its accuracy on reconstructed samples, scored
against the true labels (FL-SNN paper, Section IV, Table II)::

    mnist, cifar100, att-faces : LeNet-style CNN (ReLU, PyTorch init, Adam)
    lfw                        : small ResNet (width 32) trained from scratch, 60 epochs,
                                 flips and +-2 px shifts, label smoothing 0.1 (no
                                 ImageNet weights offline)
    dvs-gesture                : residual spiking CNN (Table I), SpikingJelly
                                 multi-step LIF + ATan, time-averaged logits
    nmnist                     : the same spiking CNN, narrower (width 4)

Judges are cached under ``cache_dir`` as ``<dataset>-<key>.pt`` (torch.save of a
dict of plain types and tensors, loaded with ``weights_only=True``) beside a
``.json`` with the test accuracy and how it was trained. The key hashes the
dataset, the resolved data_dir ('' = embedded MNIST sample), the image size
(images) or timesteps (events), the seed (LFW's split depends on it) and the
dataset's recipe (a changed recipe trains a new judge instead of reusing the
old one's checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
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
           "build_judge_model", "cache_paths", "fit_judge", "load_checkpoint", "load_judge", "set_aside", "train_judge"]

log = logging.getLogger("fedsnn")

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
    label_smoothing: float = 0.0


RECIPES = {
    "mnist": Recipe("lenet", 3),
    "cifar100": Recipe("lenet", 20, augment=True),
    # LFW (158 ids, ~22 train images each, 32x32): width 32, 60 epochs, label smoothing 0.1 -> 61.3% held out
    # (the width-16, 30-epoch recipe: 35.3%); 561 CPU-s on one thread
    "lfw": Recipe("resnet", 60, lr=2e-3, augment=True, width=32, label_smoothing=0.1),
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

    @property
    def has_features(self) -> bool:
        return hasattr(self.model, "penultimate")

    @torch.no_grad()
    def features(self, samples: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Penultimate-layer features [B, F] of images [B, C, H, W] (image judges only).

        A distance here says "these look alike to a classifier of the real
        data", which pixel distances do not (GAMIN's data-closeness check).
        """
        if not self.has_features:
            raise TypeError(f"{type(self.model).__name__} exposes no penultimate features")
        return torch.cat([self.model.penultimate(x.float()) for x in samples.split(batch_size)])


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
            loss = F.cross_entropy(model(x.transpose(0, 1) if train.is_event else x), y,
                                   label_smoothing=recipe.label_smoothing)
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
    recipe = asdict(recipe_for(dataset, data_dir)) if dataset in RECIPES else None
    identity = json.dumps({"dataset": dataset, "data_dir": resolved, "seed": seed, "recipe": recipe, **size_key},
                          sort_keys=True)
    stem = f"{dataset}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    folder = Path(cache_dir).expanduser()
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def train_judge(dataset: str, data_dir: str = "", image_size: int = 0, timesteps: int = 20, seed: int = 0,
                cache_dir: str | Path = DEFAULT_CACHE, recipe: Recipe | None = None,
                log: bool = False) -> tuple[nn.Module, float]:
    """Train the judge of ``dataset``, save it to the cache and return (model, test accuracy)."""
    recipe = recipe or recipe_for(dataset, data_dir)
    split = load_dataset(dataset, data_dir, image_size, timesteps, seed)
    checkpoint, meta = cache_paths(dataset, data_dir, image_size, timesteps, seed, cache_dir)
    _announce(f"judge for {dataset}: training {recipe.arch} on {len(split.train)} samples "
              f"({recipe.epochs} epochs{'' if recipe.max_seconds is None else f', at most {recipe.max_seconds:.0f} s'})", log)
    model, acc, facts = fit_judge(split, recipe, seed, log)
    _announce(f"judge for {dataset}: trained in {facts['wall_time_s']:.0f} s ({facts['epochs_run']} epochs), "
              f"held-out accuracy {100 * acc:.2f}% on {len(split.test)} samples; saved to {checkpoint}", log)
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


def _announce(line: str, echo: bool) -> None:
    """One progress line: to the 'fedsnn' log (the run's log), and to stdout for the CLI."""
    log.info(line)
    if echo:
        print(line, flush=True)


def set_aside(checkpoint: Path, error: Exception) -> Path:
    """Move an unreadable checkpoint (and its .json) out of the cache's way; returns the new path.

    Why: a corrupt or foreign file at the cache path would otherwise be hit
    on every load, and ``judge='auto'`` could never replace it. The file is
    kept (renamed ``<stem>.unreadable-<UTC time>.pt``) so it can be inspected.
    The warning names the file and the error's type only: torch's message
    for a refused weights-only load suggests ``weights_only=False``, which
    would execute code from an untrusted file, and must not be repeated.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside, n = checkpoint.with_name(f"{checkpoint.stem}.unreadable-{stamp}.pt"), 1
    while aside.exists():  # two failures within a second keep both files
        aside, n = checkpoint.with_name(f"{checkpoint.stem}.unreadable-{stamp}-{n}.pt"), n + 1
    os.replace(checkpoint, aside)
    meta = checkpoint.with_suffix(".json")
    if meta.exists():
        os.replace(meta, aside.with_suffix(".json"))
    log.warning("judge checkpoint %s could not be read as a judge (%s); moved aside to %s",
                checkpoint, type(error).__name__, aside)
    return aside


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
    cannot be trained (not allowed, or the dataset's files are absent). A
    checkpoint that fails to load (corrupt, truncated, not ours, refused by
    the weights-only loader) is moved aside (``set_aside``) and treated as missing.
    """
    checkpoint, _ = cache_paths(dataset, data_dir, image_size, timesteps, seed, cache_dir)
    if checkpoint.exists():
        try:
            return ModelJudge(load_checkpoint(checkpoint))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, never trusted
            set_aside(checkpoint, exc)
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
    train_judge(args.dataset, args.data_dir, args.image_size, args.timesteps, args.seed, args.cache_dir, recipe,
                log=True)  # prints the start and end lines (accuracy, checkpoint path)


if __name__ == "__main__":
    main()
