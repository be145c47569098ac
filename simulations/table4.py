"""Table IV of the FL-SNN paper: DLG, iDLG and GRNN on untrained LeNet vs SNN-LeNet.

For every cell (dataset, attack, model) and sample i: a seeded random TRAINING
sample, a fresh model (U(-0.5, 0.5) init, seed varied per sample as the paper
re-initialises), the client's FedSGD update on that one sample (``train_local``:
update = -lr * gradient, exactly what fedsnn's clients send), the server's view
of it (``ObservedUpdate``), the attack, and only then scoring against ground
truth (``fedsnn.metrics``) and the judge (ASR)::

    python -m simulations.table4 --datasets mnist,lfw --attacks dlg,idlg,grnn \
        --models lenet,snn-lenet --samples 100 --snn-samples 20 \
        --data-dir /work/shared/data --out simulations/results/table4 --time-budget 60

Writes to ``--out``: records.jsonl / records.csv (one line per attack, appended
and flushed; a rerun skips finished samples), invocations.jsonl (config, git
commit, library versions), table4.md (ours beside the paper's) and grid.png.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import sys
import zlib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from attacks import AttackConfig, ObservedUpdate, Reconstruction, get_attack
from fedsnn.data import LabelledData, load_dataset
from fedsnn.judges import DEFAULT_CACHE, cache_paths, load_judge
from fedsnn.metrics import SampleRecord, score_batch, summarise
from fedsnn.models import ModelSpec, build_model
from fedsnn.runs import RecordLog, provenance, read_jsonl
from fedsnn.training import train_local

GRID = 8  # reconstructions kept (as uint8) for the image grid, per cell
PAPER = {  # Table IV: (ASR %, MSE, SSIM, PSNR dB), 1,000 samples per cell
    ("dlg", "mnist", "lenet"): (79.40, 0.07, 0.77, 29.94), ("dlg", "mnist", "snn-lenet"): (37.20, 0.15, 0.39, 9.48),
    ("dlg", "cifar100", "lenet"): (68.80, 0.05, 0.67, 30.29), ("dlg", "cifar100", "snn-lenet"): (24.40, 0.14, 0.11, 9.46),
    ("dlg", "lfw", "lenet"): (92.50, 0.05, 0.57, 25.34), ("dlg", "lfw", "snn-lenet"): (83.80, 0.16, 0.05, 8.06),
    ("idlg", "mnist", "lenet"): (88.30, 0.04, 0.86, 28.03), ("idlg", "mnist", "snn-lenet"): (37.80, 0.11, 0.41, 9.99),
    ("idlg", "cifar100", "lenet"): (82.60, 0.03, 0.81, 33.77), ("idlg", "cifar100", "snn-lenet"): (22.80, 0.08, 0.18, 11.85),
    ("idlg", "lfw", "lenet"): (97.30, 0.01, 0.91, 33.95), ("idlg", "lfw", "snn-lenet"): (32.20, 0.07, 0.28, 11.89),
    ("grnn", "mnist", "lenet"): (85.80, 0.02, 0.69, 19.36), ("grnn", "mnist", "snn-lenet"): (9.60, 0.21, 0.00, 6.78),
    ("grnn", "cifar100", "lenet"): (69.30, 0.01, 0.66, 19.48), ("grnn", "cifar100", "snn-lenet"): (10.70, 0.11, 0.07, 10.16),
    ("grnn", "lfw", "lenet"): (88.10, 0.01, 0.66, 18.85), ("grnn", "lfw", "snn-lenet"): (55.10, 0.11, 0.39, 9.66),
}
SCORES = [f.name for f in fields(SampleRecord)]
CSV_FIELDS = ["dataset", "model", "attack", "sample", "train_index", "label", "model_seed", "status", "final_loss",
              "iterations", "evaluations", "seconds", "inferred_label", *SCORES, "mean_firing_rate", "reason"]


@dataclass(frozen=True)
class Task:
    """One attack on one sample; everything a worker process needs."""

    dataset: str
    model: str
    attack: str
    sample: int
    train_index: int
    data_dir: str
    seed: int
    lr: float
    timesteps: int
    time_budget: float | None
    cache_dir: str
    judge: bool = True


def client_update(spec: ModelSpec, model_seed: int, x: torch.Tensor, y: torch.Tensor, lr: float) -> ObservedUpdate:
    """The FedSGD update of a fresh client on one sample, as the server observes it.

    x: [C, H, W] image or [T, C, H, W] event frames; y: scalar long label.
    """
    model = build_model(spec, seed=model_seed)
    sent = {k: v.detach().clone() for k, v in model.state_dict().items()}
    one = LabelledData(x.unsqueeze(0), y.view(1), spec.num_classes)
    train_local(model, one, [np.array([0])], lr)  # plain SGD, one step: update = -lr * grad
    returned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return ObservedUpdate(spec, sent, returned, "fedsgd", lr, 1, 1, 1,
                          modality="events" if one.is_event else "image")


@lru_cache(maxsize=8)
def cached_judge(dataset: str, data_dir: str, seed: int, cache_dir: str):
    """The judge in this process (trained beforehand by the parent; never trained here)."""
    return load_judge(dataset, data_dir, seed=seed, cache_dir=cache_dir, train_if_missing=False)


def score(rec: Reconstruction, x: torch.Tensor, y: torch.Tensor, judge) -> dict[str, object]:
    """The evaluator: per-sample scores of one reconstruction (ground truth enters only here).

    A failed attack (no samples) is scored as a uniform grey 0.5 input: what an
    attacker holds before it starts, so that failures count against the cell.
    """
    samples = rec.samples if rec.samples.numel() else torch.full_like(x, 0.5).unsqueeze(0)
    labels = rec.labels if rec.labels.numel() else torch.tensor([-1])
    record = score_batch(samples.float(), x.unsqueeze(0), y.view(1), labels, judge, match=False)[0]
    return {**record.as_dict(), "inferred_label": int(labels[0])}


def run_task(task: Task) -> dict[str, object]:
    """Attack one sample and score it; returns the record (reconstruction kept for sample < GRID)."""
    torch.set_num_threads(1)
    train = load_dataset(task.dataset, task.data_dir, timesteps=task.timesteps, seed=task.seed).train
    x, y = train.samples[task.train_index], train.labels[task.train_index]
    model_seed = task.seed * 1_000_003 + task.sample
    spec = ModelSpec(task.model, train.input_shape, train.num_classes, timesteps=task.timesteps)
    observed = client_update(spec, model_seed, x, y, task.lr)  # the attacker sees only this
    config = AttackConfig(seed=task.sample, time_budget_s=task.time_budget)
    rec = get_attack(task.attack)(observed, config)
    judge = cached_judge(task.dataset, task.data_dir, task.seed, task.cache_dir) if task.judge else None
    rates = rec.diagnostics.get("firing_rates")
    record: dict[str, object] = {
        "dataset": task.dataset, "model": task.model, "attack": task.attack, "sample": task.sample,
        "train_index": task.train_index, "label": int(y), "model_seed": model_seed, "status": rec.status,
        "reason": rec.reason.splitlines()[0][:200] if rec.reason else "", "final_loss": rec.final_loss,
        "iterations": rec.iterations, "evaluations": rec.evaluations, "seconds": rec.wall_time_s,
        **score(rec, x, y, judge),
        "firing_rates": rates, "mean_firing_rate": float(np.mean(rates)) if rates else None,
        "observed_grad_norm": rec.diagnostics.get("observed_grad_norm"),
    }
    if task.sample < GRID and rec.samples.numel():
        pixels = (rec.samples[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        record["recon_uint8"] = base64.b64encode(pixels.tobytes()).decode()
    return record


def sample_indices(dataset: str, size: int, count: int, seed: int) -> list[int]:
    """The first ``count`` of a seeded permutation: growing ``count`` keeps earlier picks."""
    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode())])
    return [int(i) for i in rng.permutation(size)[:count]]


def worker_init() -> None:
    torch.set_num_threads(1)


def run_tasks(tasks: list[Task], log: RecordLog, workers: int) -> None:
    """Run ``tasks`` in ``workers`` processes (1 = in this process), appending each record as it lands."""
    if workers <= 1:
        for task in tasks:
            log.append(run_task(task))
            _progress(task)
        return
    with mp.get_context("spawn").Pool(workers, initializer=worker_init) as pool:
        for task, record in zip(tasks, pool.imap(run_task, tasks)):
            log.append(record)
            _progress(task)


def _progress(task: Task) -> None:
    print(f"done {task.dataset}/{task.model}/{task.attack} sample {task.sample}", flush=True)


def cell_summaries(records: list[dict]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(dataset, attack, model) -> fedsnn.metrics.summarise of its records, plus seconds and statuses."""
    cells: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        cells.setdefault((r["dataset"], r["attack"], r["model"]), []).append(r)
    out = {}
    for key, rs in cells.items():
        summary = summarise([SampleRecord(**{k: r[k] for k in SCORES}) for r in rs])
        summary["seconds_mean"] = float(np.mean([r["seconds"] for r in rs]))
        summary["statuses"] = {s: sum(r["status"] == s for r in rs) for s in sorted({r["status"] for r in rs})}
        out[key] = summary
    return out


def markdown(summaries: dict, judges: dict[str, str], notes: list[str]) -> str:
    """Table IV, ours beside the paper's (paper values in parentheses)."""
    lines = ["# Table IV: gradient inversion on untrained LeNet vs SNN-LeNet", "", *notes, "",
             "| dataset | attack | model | n | success (MSE<1e-3) | ASR % (paper) | label acc | SSIM mean / median (paper) "
             "| PSNR dB mean / median (paper) | MSE mean / median (paper) | s/attack | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, attack, model), s in sorted(summaries.items()):
        asr, p_mse, p_ssim, p_psnr = PAPER.get((attack, dataset, model), (float("nan"),) * 4)
        lines.append(
            f"| {dataset} | {attack} | {model} | {int(s['count'])} | {100 * s['success_rate']:.1f}% "
            f"| {100 * s.get('asr', float('nan')):.1f} ({asr:.1f}) | {100 * s.get('label_accuracy', float('nan')):.1f}% "
            f"| {s['ssim_mean']:.2f} / {s['ssim_median']:.2f} ({p_ssim:.2f}) "
            f"| {s['psnr_mean']:.1f} / {s['psnr_median']:.1f} ({p_psnr:.2f}) "
            f"| {s['mse_mean']:.3f} / {s['mse_median']:.2g} ({p_mse:.2f}) | {s['seconds_mean']:.1f} "
            f"| {', '.join(f'{k} {v}' for k, v in s['statuses'].items())} |")
    lines += ["", "Judges (ASR = judge accuracy on the reconstructions):", ""]
    lines += [f"- {d}: {text}" for d, text in sorted(judges.items())]
    return "\n".join(lines) + "\n"


def image_grid(records: list[dict], data_dir: str, seed: int, timesteps: int, path: Path) -> None:
    """Originals (first row per dataset) above each cell's first GRID reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, list[np.ndarray | None]]] = []
    for dataset in sorted({r["dataset"] for r in records}):
        train = load_dataset(dataset, data_dir, timesteps=timesteps, seed=seed).train
        shape = tuple(train.input_shape)
        picks = sample_indices(dataset, len(train), GRID, seed)
        rows.append((f"{dataset}\noriginal", [train.samples[i].numpy() for i in picks]))
        for attack, model in sorted({(r["attack"], r["model"]) for r in records if r["dataset"] == dataset}):
            by_sample = {r["sample"]: r for r in records if (r["dataset"], r["attack"], r["model"]) == (dataset, attack, model)}
            images = [np.frombuffer(base64.b64decode(by_sample[i]["recon_uint8"]), np.uint8).reshape(shape) / 255.0
                      if i in by_sample and "recon_uint8" in by_sample[i] else None for i in range(GRID)]
            rows.append((f"{model}\n{attack}", images))
    fig, axes = plt.subplots(len(rows), GRID, figsize=(1.3 * GRID, 1.3 * len(rows)), squeeze=False)
    for axrow, (title, images) in zip(axes, rows):
        for ax, image in zip(axrow, images):
            ax.set_xticks([]), ax.set_yticks([])
            if image is not None:
                chw = np.asarray(image, dtype=float)
                ax.imshow(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        axrow[0].set_ylabel(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def judge_notes(datasets: list[str], data_dir: str, seed: int, cache_dir: str) -> dict[str, str]:
    notes = {}
    for d in datasets:
        meta = cache_paths(d, data_dir, 0, 20, seed, cache_dir)[1]
        info = json.loads(meta.read_text()) if meta.exists() else None
        notes[d] = (f"{info['recipe']['arch']}, test accuracy {100 * info['test_accuracy']:.2f}% "
                    f"({info['epochs']} epochs, {info['wall_time_s']:.0f} s)" if info else "none (ASR not scored)")
    return notes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulations.table4", description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist")
    p.add_argument("--attacks", default="idlg")
    p.add_argument("--models", default="lenet")
    p.add_argument("--samples", type=int, default=10, help="samples per LeNet cell")
    p.add_argument("--snn-samples", type=int, default=None, help="samples per SNN-LeNet cell (default --samples)")
    p.add_argument("--data-dir", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1, help="client learning rate")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--time-budget", type=float, default=None, help="seconds per attack (default: none)")
    p.add_argument("--snn-time-budget", type=float, default=None, help="per SNN attack (default --time-budget)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--no-judge", action="store_true", help="skip the judge (no ASR)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets, attacks, models = (s.split(",") for s in (args.datasets, args.attacks, args.models))
    for name in attacks:
        get_attack(name)  # unknown names fail here, listing the valid ones
    RecordLog(out / "invocations.jsonl").append({"argv": sys.argv[1:] if argv is None else argv, "config": vars(args), **provenance()})
    log = RecordLog(out / "records.jsonl", out / "records.csv", CSV_FIELDS)
    done = {(r["dataset"], r["attack"], r["model"], r["sample"]) for r in read_jsonl(out / "records.jsonl")}
    tasks = []
    for dataset in datasets:
        if not args.no_judge and load_judge(dataset, args.data_dir, seed=args.seed, cache_dir=args.cache_dir) is None:
            print(f"no judge for {dataset}: ASR will not be scored")
        size = len(load_dataset(dataset, args.data_dir, timesteps=args.timesteps, seed=args.seed).train)
        for attack in attacks:
            for model in models:
                snn = model == "snn-lenet"
                count = args.snn_samples if snn and args.snn_samples is not None else args.samples
                budget = args.snn_time_budget if snn and args.snn_time_budget else args.time_budget
                for i, index in enumerate(sample_indices(dataset, size, count, args.seed)):
                    if (dataset, attack, model, i) not in done:
                        tasks.append(Task(dataset, model, attack, i, index, args.data_dir, args.seed, args.lr,
                                          args.timesteps, budget, args.cache_dir, not args.no_judge))
    print(f"{len(tasks)} attacks to run ({len(done)} already recorded)", flush=True)
    run_tasks(tasks, log, args.workers)
    report(out, args.data_dir, args.seed, args.timesteps, args.cache_dir)


def report(out: Path, data_dir: str, seed: int, timesteps: int, cache_dir: str) -> None:
    """(Re)write summary.json, table4.md and grid.png from every record in ``out``."""
    records = read_jsonl(out / "records.jsonl")
    summaries = cell_summaries(records)
    invocations = read_jsonl(out / "invocations.jsonl")
    budgets = sorted({(i["config"]["time_budget"], i["config"]["snn_time_budget"]) for i in invocations}, key=str)
    notes = [f"Ours: seeded random training samples, batch size 1, client lr {invocations[-1]['config']['lr']}, "
             "U(-0.5, 0.5) init re-drawn per sample, T = 20 for SNN-LeNet (IF neurons, ATan surrogate). "
             f"Time budgets per attack (LeNet, SNN) over invocations: {budgets}. "
             "Paper: 1,000 samples per cell. Code version: " + invocations[-1]["code_version"]]
    (out / "summary.json").write_text(json.dumps(
        {"/".join(k): v for k, v in summaries.items()}, indent=2, sort_keys=True) + "\n")
    datasets = sorted({k[0] for k in summaries})
    (out / "table4.md").write_text(markdown(summaries, judge_notes(datasets, data_dir, seed, cache_dir), notes))
    if records:
        image_grid(records, data_dir, seed, timesteps, out / "grid.png")
    print((out / "table4.md").read_text())


if __name__ == "__main__":
    main()
