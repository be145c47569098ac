"""Tables V and VI of the FL-SNN paper: DLG/iDLG on event recordings, and the l2 scale of real samples.

Table V: for each victim recording [T, 2, H, W], a fresh SNN-LeNet (U(-0.5, 0.5)
init, seeded per victim) takes one FedSGD step on it; DLG and iDLG rebuild it
from the update the server sees. Algorithm 1 ('post') binarises one attack's
result at every tau; Algorithm 2 ('in') binarises after every optimiser step
and so needs one attack per tau: it runs on the first ``--in-samples`` victims
only. Each record has the l2 to the original and the judge's verdict (ASR).
Table VI: l2 between real samples of one class (intra) and of two (inter).

``--dataset``:
  nmnist       N-MNIST from --data-dir; victims are TEST recordings (unseen by
               the judge, a spiking CNN trained on the training recordings)
  dvs-gesture  DVS128 Gesture from --data-dir (tonic's layout, or the cut
               recordings of dvs128_gesture/, whose labels are inferred: every
               record says so); victims from the test split, or the cuts
               (training split) when there is none; no judge for the cuts
  synthetic    ``synthetic_gestures`` (victims from its training split): NOT
               comparable to the paper, labelled so

    python -m simulations.table5_6 --dataset nmnist --data-dir /work/shared/data --samples 20 \
        --in-samples 5 --out simulations/results/table5_6/nmnist --iterations 50

Budgets are deterministic (``--iterations`` L-BFGS steps, ``--max-eval``
evaluations per step, ``--tolerance``), so a record is the same on any
machine; ``--time-budget`` is only a safety guard (off by default), recorded
in the record's status and reason when it fires.

DLG/iDLG victims run together (``attacks.reconstruct_many``, ``--max-victims``
per optimisation, each on its own seed and time budget). Writes records.jsonl
/ records.csv (one line per victim, attack, algorithm and tau; appended as each
batch ends, a rerun skips finished victims), table6.json, invocations.jsonl,
then ``simulations.table5_6_report`` (table5_6.md, thresholds.png).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from attacks import AttackConfig, reconstruct_many
from attacks.gradient import TAUS, binarise
from fedsnn.analysis.judges import DEFAULT_CACHE, ModelJudge, Recipe, accuracy, cache_paths, fit_judge, load_judge
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.provenance import provenance
from fedsnn.experiment.simulated_client import client_update
from fedsnn.task.data import LabelledData, Split, load_dataset
from fedsnn.task.models import ModelSpec
from simulations.common import sample_indices, score
from simulations.table5_6_report import pairwise_l2, write_report

CSV_FIELDS = ["source", "attack", "algorithm", "tau", "sample", "split", "victim_index", "label", "label_source",
              "model_seed", "status", "seconds", "l2", "judge_correct", "label_correct", "inferred_label",
              "spike_density", "reason"]


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


def event_data(args: argparse.Namespace) -> tuple[Split, str]:
    """(split, source) for ``--dataset``; source names what the records hold."""
    if args.dataset == "synthetic":
        n_train, n_test = args.synthetic_train, args.synthetic_test
        data = synthetic_gestures(n_train + n_test, args.timesteps, args.synthetic_size, args.seed)
        return Split(data.subset(range(n_train)), data.subset(range(n_train, n_train + n_test))), "synthetic"
    split = load_dataset(args.dataset, args.data_dir, timesteps=args.timesteps, seed=args.seed)
    if args.dataset == "dvs-gesture" and split.train.label_source != "given":
        return split, "dvs128-gesture-cuts"
    return split, {"nmnist": "nmnist", "dvs-gesture": "dvs128-gesture"}[args.dataset]


def judge_for(args: argparse.Namespace, split: Split, source: str) -> tuple[ModelJudge | None, float | None]:
    """(judge, its held-out accuracy); (None, None) for the DVS cuts, which have no split to train on."""
    if source == "synthetic":  # seeded and quick: trained afresh each invocation, never cached
        model, acc, _ = fit_judge(split, Recipe("dvs-snn", args.judge_epochs, batch_size=16, width=args.judge_width),
                                  args.seed)
        return ModelJudge(model), acc
    if len(split.test) == 0:
        return None, None
    judge = load_judge(args.dataset, args.data_dir, timesteps=args.timesteps, seed=args.seed, cache_dir=args.cache_dir)
    meta = cache_paths(args.dataset, args.data_dir, 0, args.timesteps, args.seed, args.cache_dir)[1]
    return judge, json.loads(meta.read_text())["test_accuracy"] if meta.exists() else None


def victims(split: Split, args: argparse.Namespace) -> tuple[str, LabelledData, list[int]]:
    """(split name, its data, the victims' indices): the test split when it has samples, else train.

    Synthetic victims stay training samples, as in the records committed before real data came.
    """
    real_test = len(split.test) and args.dataset != "synthetic"
    name, data = ("test", split.test) if real_test else ("train", split.train)
    return name, data, sample_indices(args.dataset, len(data), args.samples, args.seed)


def attack_batch(data: LabelledData, picks: list[tuple[int, int]], attack: str, algorithm: str, tau: float | None,
                 args: argparse.Namespace, base: dict, judge) -> list[dict]:
    """One optimisation over the victims ``picks`` [(sample, index)]; the scored records.

    'post' runs unthresholded and binarises at every tau in TAUS; 'in' runs with
    Algorithm 2 at ``tau``. Victim ``sample`` uses model seed seed * 1_000_003 + sample
    and attack seed ``sample``, as ``simulations.table4`` does.
    """
    spec = ModelSpec("snn-lenet", data.input_shape, data.num_classes, timesteps=args.timesteps)
    seeds = [args.seed * 1_000_003 + s for s, _ in picks]
    observed = [client_update(spec, m, data.samples[i], data.labels[i], args.lr) for m, (_, i) in zip(seeds, picks)]
    config = AttackConfig(iterations=args.iterations, max_eval=args.max_eval, tolerance=args.tolerance,
                          time_budget_s=args.time_budget, thresholding="none" if algorithm == "post" else "in",
                          tau=tau if tau is not None else 0.5)
    recs = reconstruct_many(observed, config, attack, max_victims=args.max_victims, seeds=[s for s, _ in picks])
    records = []
    for (sample, index), model_seed, rec in zip(picks, seeds, recs):
        x, y = data.samples[index], data.labels[index]
        runs = [(t, rec.with_samples(binarise(rec.samples, t) if rec.samples.numel() else rec.samples))
                for t in TAUS] if algorithm == "post" else [(tau, rec)]
        for t, r in runs:
            records.append({
                **base, "attack": attack, "algorithm": algorithm, "tau": t, "sample": sample, "victim_index": index,
                "label": int(y), "model_seed": model_seed, "status": r.status, "seconds": r.wall_time_s,
                "iterations": r.iterations, "evaluations": r.evaluations,
                "final_loss": r.final_loss if math.isfinite(r.final_loss) else None,
                "spike_density": float(r.samples.float().mean()) if r.samples.numel() else None,
                "reason": r.reason.splitlines()[0][:200] if r.reason else "", **score(r, x, y, judge),
                "firing_rates": r.diagnostics.get("firing_rates"),
            })
    return records


def run(args: argparse.Namespace, out: Path) -> None:
    split, source = event_data(args)
    judge, judge_acc = judge_for(args, split, source)
    split_name, data, indices = victims(split, args)
    chosen = data.subset(indices)
    on_originals = accuracy(judge, chosen) if judge is not None and indices else None
    # control: a silent (all-zero) reconstruction, what binarising at a high tau tends to leave
    silent = LabelledData(torch.zeros_like(chosen.samples), chosen.labels, chosen.num_classes)
    on_silent = accuracy(judge, silent) if judge is not None and indices else None
    RecordLog(out / "invocations.jsonl").append({
        "argv": sys.argv[1:], "config": vars(args), "source": source, "label_source": data.label_source,
        "victim_split": split_name, "victims": len(indices), "frames": list(data.samples.shape[1:]),
        "judge_accuracy": judge_acc, "judge_test_size": len(split.test) if judge is not None else 0,
        "judge_on_originals": on_originals, "judge_on_silent": on_silent, **provenance()})
    log = RecordLog(out / "records.jsonl", out / "records.csv", CSV_FIELDS)
    done = {(r["attack"], r["algorithm"], r["tau"] if r["algorithm"] == "in" else None, r["sample"])
            for r in read_jsonl(out / "records.jsonl")}
    base = {"source": source, "split": split_name, "label_source": data.label_source}
    runs = [("post", None, indices)] + [("in", tau, indices[:args.in_samples]) for tau in TAUS]
    for attack in args.attacks.split(","):
        for algorithm, tau, chosen in runs:
            if algorithm not in args.algorithms.split(","):
                continue
            todo = [(s, i) for s, i in enumerate(chosen) if (attack, algorithm, tau, s) not in done]
            for start in range(0, len(todo), args.max_victims):
                batch = todo[start:start + args.max_victims]
                for record in attack_batch(data, batch, attack, algorithm, tau, args, base, judge):
                    log.append(record)
                print(f"done {source} {attack} {algorithm} tau={tau} victims {[s for s, _ in batch]}", flush=True)
    table6 = pairwise_l2(split.train, args.pairs_per_class)
    (out / "table6.json").write_text(json.dumps({"source": source, "split": "train", **table6}, indent=2) + "\n")
    write_report(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulations.table5_6", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("nmnist", "dvs-gesture", "synthetic"), default="synthetic")
    p.add_argument("--data-dir", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--attacks", default="dlg,idlg")
    p.add_argument("--algorithms", default="post,in")
    p.add_argument("--samples", type=int, default=5, help="victims (Algorithm 1)")
    p.add_argument("--in-samples", type=int, default=2, help="victims of Algorithm 2 (one attack per tau each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--iterations", type=int, default=50, help="L-BFGS steps per attack (faithful: 300)")
    p.add_argument("--max-eval", type=int, default=20, help="evaluations per L-BFGS step")
    p.add_argument("--tolerance", type=float, default=1e-6, help="stop once the matching loss is below it")
    p.add_argument("--time-budget", type=float, default=None,
                   help="wall-clock safety guard in seconds per attack and victim (off: results then depend on load)")
    p.add_argument("--max-victims", type=int, default=8, help="victims per batched optimisation")
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
    run(args, out)
    print((out / "table5_6.md").read_text())


if __name__ == "__main__":
    main()
