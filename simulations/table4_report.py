"""Table IV's evaluator side: summaries, the markdown table beside the paper's, the image grid.

Reads only the records ``simulations.table4`` writes (and the judge cache), so
a report can be rebuilt from a results folder at any time::

    python -m simulations.table4_report --out simulations/results/table4 --data-dir /work/shared/data
"""

from __future__ import annotations

import argparse
import base64
import json
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fedsnn.task.data import load_dataset
from fedsnn.analysis.judges import DEFAULT_CACHE, cache_paths, load_judge
from attacks.core import TIME_GUARD, AuxiliaryData
from fedsnn.analysis import stats
from fedsnn.analysis.metrics import SampleRecord, judge_correct
from fedsnn.analysis.scoring import score_controls
from fedsnn.experiment.runs import read_jsonl

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


@lru_cache(maxsize=8)
def cached_judge(dataset: str, data_dir: str, seed: int, cache_dir: str):
    """The judge in this process (trained beforehand by the parent; never trained here)."""
    return load_judge(dataset, data_dir, seed=seed, cache_dir=cache_dir, train_if_missing=False)


def with_controls(records: list[dict], data_dir: str, seed: int, timesteps: int, cache_dir: str) -> list[dict]:
    """Records with controls and gains; those written before controls existed are completed here.

    A legacy record's 'ssim' is the uniform 7x7 window value: it moves to
    'ssim_uniform7' and its Wang SSIM stays unknown (the reconstruction was
    not kept). Its controls (mean image and label-only guess from the test
    split) are scored against the original re-read from ``train_index``; the
    starting dummy of those runs is not recoverable, so 'initial' is absent.
    """
    out = []
    for dataset in sorted({r["dataset"] for r in records}):
        mine = [dict(r) for r in records if r["dataset"] == dataset]
        legacy = [r for r in mine if "ssim_uniform7" not in r]
        if legacy:
            split = load_dataset(dataset, data_dir, timesteps=timesteps, seed=seed)
            aux = AuxiliaryData(split.test.samples, split.test.labels, split.test.num_classes, f"{dataset} test split")
            judge = cached_judge(dataset, data_dir, seed, cache_dir)
            for r in legacy:
                r["ssim_uniform7"], r["ssim"] = r["ssim"], float("nan")
                x, y = split.train.samples[r["train_index"]][None], split.train.labels[r["train_index"]].view(1)
                controls = score_controls(x, y, aux, torch.tensor([r["inferred_label"]]), None, judge)
                for name, (record,) in controls.items():
                    r[f"control_{name}"] = record.as_dict()
                r["gain_psnr"] = r["psnr"] - r["control_label_only"]["psnr"]
                r["gain_ssim"] = float("nan")
        for r in mine:
            r["gain_ssim_uniform7"] = r["ssim_uniform7"] - r["control_label_only"]["ssim_uniform7"]
        out += mine
    return out


def cell_summaries(records: list[dict], ceiling: dict[str, object] | None = None) -> dict[tuple[str, str, str], dict]:
    """(dataset, attack, model) -> figures with intervals (``fedsnn.analysis.stats``), seconds and statuses.

    ``ceiling``: dataset -> callable(records) giving the judge's verdicts on the
    same samples' originals (the best ASR a perfect attack could reach).
    """
    cells: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        cells.setdefault((r["dataset"], r["attack"], r["model"]), []).append(r)
    out = {}
    for key, rs in cells.items():
        label_only = [r["control_label_only"] for r in rs]
        summary = {
            "n": len(rs), "success": stats.rate([r["success"] for r in rs]),
            "asr": stats.rate([r["judge_correct"] for r in rs]),
            "asr_floor": stats.rate([c["judge_correct"] for c in label_only]),
            "label": stats.rate([r["label_correct"] for r in rs]),
            **{f"{m}_median": stats.median([r[m] for r in rs]) for m in ("ssim", "ssim_uniform7", "psnr", "mse")},
            "psnr_mean": stats.mean([r["psnr"] for r in rs]),
            "psnr_label_only": stats.median([c["psnr"] for c in label_only]),
            **{f"gain_{m}": stats.median([r[f"gain_{m}"] for r in rs]) for m in ("psnr", "ssim", "ssim_uniform7")},
            "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
            # batched attacks record their share of the batch's time, so the sum is the cell's wall time
            "seconds_total": float(np.sum([r["seconds"] for r in rs])),
            "time_guard": sum(r["reason"].startswith(("time budget", TIME_GUARD)) for r in rs),
            "tolerances": sorted({r.get("tolerance", 1e-6) for r in rs}),
            "statuses": {s: sum(r["status"] == s for r in rs) for s in sorted({r["status"] for r in rs})},
        }
        if ceiling and ceiling.get(key[0]):
            summary["asr_ceiling"] = stats.rate(ceiling[key[0]](rs))
        out[key] = summary
    return out


def markdown(summaries: dict, judges: dict[str, str], notes: list[str]) -> str:
    """Table IV, ours beside the paper's (paper values in parentheses), every figure with its 95% interval."""
    pct = lambda i: i.format(".0f", 100, "%") if i is not None else "n/a"  # noqa: E731
    lines = ["# Table IV: gradient inversion on untrained LeNet vs SNN-LeNet", "", *notes, "",
             "| dataset | attack | model | n | success (MSE<1e-3) | ASR (paper) | ASR floor (label-only guess) "
             "| ASR ceiling (originals) | label acc | median SSIM Wang | median SSIM uniform 7x7 (paper) "
             "| median PSNR dB (paper) | label-only PSNR dB | PSNR gain dB | SSIM gain (uniform 7x7) | s/attack "
             "| cell wall min | time-guard stops | statuses |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, attack, model), s in sorted(summaries.items()):
        asr, p_mse, p_ssim, p_psnr = PAPER.get((attack, dataset, model), (float("nan"),) * 4)
        lines.append(
            f"| {dataset} | {attack} | {model} | {s['n']} | {pct(s['success'])} | {pct(s['asr'])} ({asr:.1f}) "
            f"| {pct(s['asr_floor'])} | {pct(s.get('asr_ceiling'))} | {pct(s['label'])} "
            f"| {s['ssim_median'].format('.2f')} | {s['ssim_uniform7_median'].format('.2f')} ({p_ssim:.2f}) "
            f"| {s['psnr_median'].format('.1f')} ({p_psnr:.2f}) | {s['psnr_label_only'].format('.1f')} "
            f"| {s['gain_psnr'].format('+.1f')} | {s['gain_ssim_uniform7'].format('+.2f')} | {s['seconds_mean']:.1f} "
            f"| {s['seconds_total'] / 60:.1f} | {s['time_guard']} | {', '.join(f'{k} {v}' for k, v in s['statuses'].items())} |")
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
        picks = {r["sample"]: r["train_index"] for r in records if r["dataset"] == dataset and r["sample"] < GRID}
        rows.append((f"{dataset}\noriginal", [train.samples[picks[i]].numpy() if i in picks else None
                                                for i in range(GRID)]))
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


def originals_scorer(dataset: str, data_dir: str, seed: int, timesteps: int, cache_dir: str):
    """records -> the judge's accuracy on their original samples, or None without a judge."""
    judge = cached_judge(dataset, data_dir, seed, cache_dir)
    if judge is None:
        return None
    train = load_dataset(dataset, data_dir, timesteps=timesteps, seed=seed).train
    return lambda rs: judge_correct(judge, train.samples[[r["train_index"] for r in rs]],
                                    train.labels[[r["train_index"] for r in rs]]).tolist()


def report(out: Path, data_dir: str, seed: int, timesteps: int, cache_dir: str) -> None:
    """(Re)write summary.json, table4.md and grid.png from every record in ``out``."""
    records = with_controls(read_jsonl(out / "records.jsonl"), data_dir, seed, timesteps, cache_dir)
    summaries = cell_summaries(records, {d: originals_scorer(d, data_dir, seed, timesteps, cache_dir)
                                         for d in {r["dataset"] for r in records}})
    invocations = read_jsonl(out / "invocations.jsonl")
    budgets = sorted({(i["config"]["time_budget"], i["config"]["snn_time_budget"]) for i in invocations}, key=str)
    tolerances = sorted({t for v in summaries.values() for t in v["tolerances"]})
    steps = sorted({(i["config"].get("iterations", 300), i["config"].get("grnn_iterations", 1000)) for i in invocations})
    notes = [f"Ours: seeded random training samples, batch size 1, client lr {invocations[-1]['config']['lr']}, "
             "U(-0.5, 0.5) init re-drawn per sample, T = 20 for SNN-LeNet (IF neurons, ATan surrogate). "
             f"Wall-clock guards per attack (LeNet, SNN) over invocations: {budgets}; 'time-guard stops' counts the "
             "attacks they ended (those results depend on the machine's load). "
             f"Budgets (DLG/iDLG L-BFGS steps, GRNN generator updates) over invocations: {steps}. "
             f"Stopping tolerance on the matching loss: {tolerances} (success-case PSNR depends on it; the paper "
             "does not give its own). Paper: 1,000 samples per cell. Code version: " + invocations[-1]["code_version"],
             "",
             "Every figure is `value [95% interval]`: Wilson for rates, percentile bootstrap (2,000 resamples) for "
             "medians. Gains are the attack's score minus that of the label-only guess (the class-mean image of the "
             "attack's inferred label, from the test split) on the same sample; the ASR floor is the judge's "
             "accuracy on that guess, the ceiling its accuracy on the originals. 'SSIM Wang' is Wang et al.'s "
             "Gaussian-window SSIM, n/a for records written before it was reported (their reconstructions were "
             "not kept); 'SSIM uniform 7x7' is scikit-image's default window, the value recorded then."]
    (out / "summary.json").write_text(json.dumps(
        {"/".join(k): {n: (v.as_dict() if isinstance(v, stats.Interval) else v) for n, v in s.items()}
         for k, s in summaries.items()}, indent=2, sort_keys=True) + "\n")
    datasets = sorted({k[0] for k in summaries})
    (out / "table4.md").write_text(markdown(summaries, judge_notes(datasets, data_dir, seed, cache_dir), notes))
    if records:
        image_grid(records, data_dir, seed, timesteps, out / "grid.png")
    print((out / "table4.md").read_text())


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m simulations.table4_report", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    a = p.parse_args()
    report(Path(a.out), a.data_dir, a.seed, a.timesteps, a.cache_dir)
