"""Tables V and VI of the FL-SNN paper: DLG/iDLG on event data, and the l2 scale of real samples.

Table V: for each sample, a fresh SNN-LeNet (U(-0.5, 0.5) init) takes one FedSGD
step on one event sample [T, 2, H, W]; DLG and iDLG rebuild it from the update,
binarised after the attack (Algorithm 1, 'post') or after every update
(Algorithm 2, 'in') at each tau (``attacks.gradient.thresholding.sweep``); l2 to the
original and the DVS judge's accuracy (ASR) are recorded. Table VI: l2 between
real samples of the same class (intra) and of different classes (inter).

Data: DVS128 Gesture when ``--data-dir`` holds it (tonic layout, see
fedsnn.task.data.loaders), otherwise SYNTHETIC event data from ``synthetic_gestures``,
and every output says so: synthetic numbers are not comparable to the paper's::

    python -m simulations.table5_6 --data-dir /work/shared/data --samples 5 \
        --out simulations/results/table5_6 --time-budget 20

Writes records.jsonl / records.csv (Table V, one line per sample, attack,
algorithm and tau; resumable), table6.json, invocations.jsonl, table5_6.md and
thresholds.png (ASR and l2 against tau, the paper's Fig. 5).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from attacks import AttackConfig, get_attack
from attacks.gradient import ALGORITHMS, TAUS, sweep
from fedsnn.task.data import LabelledData, Split, load_dataset
from fedsnn.errors import DataNotFoundError
from fedsnn.analysis.judges import DEFAULT_CACHE, ModelJudge, Recipe, cache_paths, fit_judge, load_judge
from fedsnn.task.models import ModelSpec
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.provenance import provenance
from fedsnn.experiment.simulated_client import client_update
from simulations.common import sample_indices, score

PAPER_V = {  # (attack, tau) -> (post ASR %, post l2, in ASR %, in l2)
    ("dlg", 0.1): (9.41, 504.03, 9.60, 457.26), ("idlg", 0.1): (9.19, 508.09, 9.60, 457.28),
    ("dlg", 0.25): (7.67, 257.75, 7.10, 100.17), ("idlg", 0.25): (8.54, 270.65, 7.80, 100.19),
    ("dlg", 0.5): (8.04, 127.36, 8.50, 42.57), ("idlg", 0.5): (8.29, 130.44, 8.50, 42.57),
    ("dlg", 0.75): (9.41, 87.52, 8.50, 42.56), ("idlg", 0.75): (9.65, 85.45, 8.50, 42.56),
    ("dlg", 0.9): (8.54, 75.47, 8.50, 42.56), ("idlg", 0.9): (10.64, 72.33, 8.50, 42.56),
    ("dlg", 0.95): (8.42, 72.50, 8.50, 42.56), ("idlg", 0.95): (10.52, 69.21, 8.50, 42.56),
}
PAPER_VI = {"intra": (60.34, 13.80, 0.00, 106.64), "inter": (60.80, 11.51, 14.93, 105.15)}  # mean, std, min, max
CSV_FIELDS = ["source", "attack", "algorithm", "tau", "sample", "train_index", "label", "model_seed", "status",
              "seconds", "l2", "judge_correct", "label_correct", "inferred_label", "spike_density", "reason"]


def synthetic_gestures(n: int, timesteps: int, size: int, seed: int, classes: int = 11) -> LabelledData:
    """Synthetic DVS-format 'gestures': NOT DVS128 Gesture, a stand-in with its format.

    Class c is a disc (radius size/8) moving in direction 2 pi c / classes at
    about size/(2T) pixels per bin (speed x U(0.8, 1.2), start jittered by
    +-size/8 around the path's centre). Channel 0 (ON) fires where the disc
    arrives in a bin, channel 1 (OFF) where it leaves, as a DVS sensor would,
    plus Bernoulli(0.01) background noise in both channels.

    Returns LabelledData with samples float {0, 1} [n, T, 2, size, size].
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    t = torch.arange(timesteps + 1).float() - timesteps / 2
    angle = 2 * math.pi * labels.float() / classes  # [n]
    speed = size / (2 * timesteps) * (0.8 + 0.4 * torch.rand(n, generator=g))
    start = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * size / 4
    cy = start[:, :1] + speed[:, None] * t * torch.sin(angle)[:, None]  # [n, T+1]
    cx = start[:, 1:] + speed[:, None] * t * torch.cos(angle)[:, None]
    disc = ((yy - cy[..., None, None]) ** 2 + (xx - cx[..., None, None]) ** 2) < (size / 8) ** 2  # [n, T+1, H, W]
    on, off = disc[:, 1:] & ~disc[:, :-1], disc[:, :-1] & ~disc[:, 1:]
    frames = torch.stack([on, off], 2).float()
    noise = (torch.rand(frames.shape, generator=g) < 0.01).float()
    return LabelledData(torch.maximum(frames, noise), labels, classes, tuple(f"synthetic-{c}" for c in range(classes)))


def event_data(data_dir: str, timesteps: int, size: int, seed: int, n_train: int, n_test: int) -> tuple[Split, str]:
    """Real DVS128 Gesture if present under ``data_dir``, else synthetic; returns (split, source)."""
    try:
        return load_dataset("dvs-gesture", data_dir, timesteps=timesteps, seed=seed), "dvs128-gesture"
    except DataNotFoundError:
        data = synthetic_gestures(n_train + n_test, timesteps, size, seed)
        return Split(data.subset(range(n_train)), data.subset(range(n_train, n_train + n_test))), "synthetic"


def pairwise_l2(data: LabelledData, per_class: int) -> dict[str, dict[str, float]]:
    """Table VI: l2 between distinct samples, same class (intra) vs different classes (inter).

    Uses the first ``per_class`` samples of each class; self-pairs are excluded.
    'to_empty' is each sample's own norm, the l2 of an all-zero (silent)
    reconstruction: a binarised dummy with no spike left scores exactly this.
    """
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(data.num_classes)])
    x, y = data.samples[keep].flatten(1).double(), data.labels[keep]
    dist = torch.cdist(x, x)
    upper = torch.triu(torch.ones_like(dist, dtype=torch.bool), diagonal=1)
    same = y[:, None] == y[None, :]
    out = {}
    for name, mask in (("intra", upper & same), ("inter", upper & ~same)):
        out[name] = _stats(dist[mask])
    out["to_empty"] = _stats(x.norm(dim=1))  # l2 of an all-zero reconstruction: ||x||
    return out


def _stats(d: torch.Tensor) -> dict[str, float]:
    return {"mean": float(d.mean()), "std": float(d.std(correction=0)), "min": float(d.min()), "max": float(d.max()),
            "pairs": int(d.numel())}


def attack_sample(split: Split, source: str, attack: str, sample: int, index: int, args: argparse.Namespace,
                  judge) -> list[dict]:
    """One event sample: client update, the (algorithm, tau) sweep, scored records."""
    x, y = split.train.samples[index], split.train.labels[index]  # [T, 2, H, W]
    spec = ModelSpec("snn-lenet", split.train.input_shape, split.train.num_classes, timesteps=args.timesteps)
    model_seed = args.seed * 1_000_003 + sample
    observed = client_update(spec, model_seed, x, y, args.lr)  # what the server sees
    config = AttackConfig(seed=sample, time_budget_s=args.time_budget)
    results = sweep(get_attack(attack), observed, config, TAUS, ALGORITHMS)
    records = []
    for (algorithm, tau), rec in results.items():
        scored = score(rec, x, y, judge)
        records.append({
            "source": source, "attack": attack, "algorithm": algorithm, "tau": tau, "sample": sample,
            "train_index": index, "label": int(y), "model_seed": model_seed, "status": rec.status,
            "seconds": rec.wall_time_s, "spike_density": float(rec.samples.mean()) if rec.samples.numel() else None,
            "reason": rec.reason.splitlines()[0][:200] if rec.reason else "", **scored,
            "firing_rates": rec.diagnostics.get("firing_rates"),
        })
    return records


def markdown(records: list[dict], table6: dict, source: str, judge_acc: float, notes: list[str]) -> str:
    warn = ("**SYNTHETIC event data (synthetic_gestures), not DVS128 Gesture: these numbers are NOT comparable "
            "to the paper's.**" if source == "synthetic" else "Data: DVS128 Gesture (tonic ToFrame).")
    lines = ["# Tables V and VI: gradient inversion on event data (SNN-LeNet)", "", warn, "", *notes,
             f"Judge (DVSGestureSNN) test accuracy: {100 * judge_acc:.1f}% (chance {100 / 11:.1f}%).", "",
             "## Table V", "", "| tau | attack | n | post ASR % (paper) | post l2 (paper) | in ASR % (paper) "
             "| in l2 (paper) | post / in spike density | s/attack post / in |", "|---|---|---|---|---|---|---|---|---|"]
    for tau in TAUS:
        for attack in ("dlg", "idlg"):
            cells = {a: [r for r in records if r["tau"] == tau and r["attack"] == attack and r["algorithm"] == a]
                     for a in ALGORITHMS}
            if not any(cells.values()):
                continue
            paper = PAPER_V[(attack, tau)]

            def stat(rs: list[dict], key: str, scale: float = 1.0) -> float:
                values = [float(r[key]) for r in rs if r[key] is not None]
                return scale * float(np.mean(values)) if values else float("nan")

            post, inn = cells["post"], cells["in"]
            lines.append(
                f"| {tau} | {attack} | {len(post)} | {stat(post, 'judge_correct', 100):.1f} ({paper[0]}) "
                f"| {stat(post, 'l2'):.1f} ({paper[1]}) | {stat(inn, 'judge_correct', 100):.1f} ({paper[2]}) "
                f"| {stat(inn, 'l2'):.1f} ({paper[3]}) | {stat(post, 'spike_density'):.3f} / {stat(inn, 'spike_density'):.3f} "
                f"| {stat(post, 'seconds'):.1f} / {stat(inn, 'seconds'):.1f} |")
    lines += ["", "## Table VI: l2 between real samples (self-pairs excluded)", "",
              "to_empty: l2 between a sample and the all-zero tensor (not in the paper); a reconstruction "
              "binarised to no spikes at all scores this.", "",
              "| type | mean (paper) | std (paper) | min (paper) | max (paper) | pairs (samples) |", "|---|---|---|---|---|---|"]
    for name, s in table6.items():
        p = PAPER_VI.get(name, ("-",) * 4)
        lines.append(f"| {name} | {s['mean']:.2f} ({p[0]}) | {s['std']:.2f} ({p[1]}) | {s['min']:.2f} ({p[2]}) "
                     f"| {s['max']:.2f} ({p[3]}) | {s['pairs']} |")
    return "\n".join(lines) + "\n"


def threshold_plot(records: list[dict], source: str, path: Path) -> None:
    """ASR and l2 against tau per (attack, algorithm), as the paper's Fig. 5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_asr, ax_l2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for attack in ("dlg", "idlg"):
        for algorithm in ALGORITHMS:
            rs = [[r for r in records if (r["attack"], r["algorithm"], r["tau"]) == (attack, algorithm, t)] for t in TAUS]
            if not any(rs):
                continue
            asr = [100 * np.mean([bool(r["judge_correct"]) for r in c]) if c else np.nan for c in rs]
            l2 = [np.mean([r["l2"] for r in c]) if c else np.nan for c in rs]
            ax_asr.plot(TAUS, asr, marker="o", label=f"{attack} {algorithm}")
            ax_l2.plot(TAUS, l2, marker="o", label=f"{attack} {algorithm}")
    ax_asr.axhline(100 / 11, color="grey", ls="--", lw=1)
    ax_asr.set(xlabel="tau", ylabel="ASR %", title=f"ASR ({source})")
    ax_l2.set(xlabel="tau", ylabel="l2", title=f"l2 to original ({source})")
    ax_asr.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulations.table5_6", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--attacks", default="dlg,idlg")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--time-budget", type=float, default=20.0, help="seconds per attack")
    p.add_argument("--synthetic-size", type=int, default=32, help="H = W of synthetic frames (DVS128: 128)")
    p.add_argument("--synthetic-train", type=int, default=330)
    p.add_argument("--synthetic-test", type=int, default=110)
    p.add_argument("--judge-width", type=int, default=8, help="synthetic judge width (paper: 64)")
    p.add_argument("--judge-epochs", type=int, default=4, help="synthetic judge epochs")
    p.add_argument("--pairs-per-class", type=int, default=20, help="Table VI samples per class")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split, source = event_data(args.data_dir, args.timesteps, args.synthetic_size, args.seed,
                               args.synthetic_train, args.synthetic_test)
    if source == "synthetic":  # seeded and quick: trained afresh each invocation, never cached
        model, judge_acc, _ = fit_judge(split, Recipe("dvs-snn", args.judge_epochs, batch_size=16,
                                                      width=args.judge_width), args.seed)
        judge = ModelJudge(model)
    else:
        judge = load_judge("dvs-gesture", args.data_dir, timesteps=args.timesteps, seed=args.seed,
                           cache_dir=args.cache_dir)
        meta = cache_paths("dvs-gesture", args.data_dir, 0, args.timesteps, args.seed, args.cache_dir)[1]
        judge_acc = json.loads(meta.read_text())["test_accuracy"] if meta.exists() else float("nan")
    RecordLog(out / "invocations.jsonl").append({"argv": sys.argv[1:] if argv is None else argv, "config": vars(args),
                                                 "source": source, "judge_accuracy": judge_acc, **provenance()})
    log = RecordLog(out / "records.jsonl", out / "records.csv", CSV_FIELDS)
    done = {(r["attack"], r["sample"]) for r in read_jsonl(out / "records.jsonl")}
    for attack in args.attacks.split(","):
        for sample, index in enumerate(sample_indices("dvs-gesture", len(split.train), args.samples, args.seed)):
            if (attack, sample) not in done:
                for record in attack_sample(split, source, attack, sample, index, args, judge):
                    log.append(record)
                print(f"done {attack} sample {sample}", flush=True)
    table6 = pairwise_l2(split.train, args.pairs_per_class)
    (out / "table6.json").write_text(json.dumps({"source": source, **table6}, indent=2) + "\n")
    records = read_jsonl(out / "records.jsonl")
    notes = [f"Per attack: SNN-LeNet (IF, ATan, T = {args.timesteps}), batch 1, client lr {args.lr}, "
             f"time budget {args.time_budget} s; frames {tuple(split.train.input_shape)}; "
             f"code {provenance()['code_version']}. Paper: DVS128 Gesture, 2x128x128, T = 20."]
    (out / "table5_6.md").write_text(markdown(records, table6, source, judge_acc, notes))
    threshold_plot(records, source, out / "thresholds.png")
    print((out / "table5_6.md").read_text())


if __name__ == "__main__":
    main()
