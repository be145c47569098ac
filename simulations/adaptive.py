"""Do SNNs leak less under attacks built for them? Analytic + learned inversion, IG and iDLG on real MNIST.

Threat model: a curious server that knows the global model and holds
auxiliary MNIST *train* images (``--aux`` of them, a seeded draw); the victims
are MNIST *test* digits (disjoint splits, checked by digest). Each model seed
is one global model (one round); its ``--digits`` victims each send a batch-1
FedSGD update (lr 0.1). The learned decoder is trained once per (model, init,
seed) and shared by that seed's victims. The optimisation attacks (iDLG, IG,
IG with the relaxed SNN forward) run on the first ``--opt-digits`` victims of
each seed (CPU budget)::

    python -m simulations.adaptive --data-dir ../shared/data --out simulations/results/adaptive

Writes records.jsonl (one line per model, init, seed, attack and digit, with
the controls: mean image, label-only guess, starting dummy; resumable: done
lines are skipped) and, with ``--report``, report.md and the grids
(``simulations/adaptive_report.py``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from attacks import AttackConfig, AuxiliaryData, Reconstruction, reconstruct_all
from attacks.gradient import learned
from fedsnn.analysis.metrics import mse, psnr, ssim
from fedsnn.experiment.runs import RecordLog, read_jsonl
from fedsnn.experiment.simulated_client import client_update
from fedsnn.provenance import provenance
from fedsnn.task.data import load_dataset
from fedsnn.task.models import ModelSpec
from simulations.common import encode_pixels, sample_indices

MODELS = ("snn-lenet", "lenet")
INITS = ("uniform-0.5", "default")
CLIENT_LR = 0.1
PHASES = (("analytic", "learned"), ("idlg", "ig", "ig-relaxed"))


def image_scores(image: torch.Tensor | None, x: torch.Tensor) -> dict[str, float | None]:
    if image is None or not image.numel():
        return {"ssim": None, "psnr": None}
    a, b = image.reshape(1, *x.shape).float(), x.unsqueeze(0)
    return {"ssim": float(ssim(a, b)[0]), "psnr": float(psnr(mse(a, b))[0])}


def record(rec: Reconstruction, x: torch.Tensor, y: torch.Tensor, aux: AuxiliaryData,
           true_features: torch.Tensor, timesteps: int | None) -> dict[str, object]:
    """The evaluator for one victim: the attack's scores beside the controls (ground truth enters here)."""
    label = int(rec.labels[0]) if rec.labels.numel() else -1
    class_means = aux.class_means()
    out: dict[str, object] = {
        "status": rec.status, "seconds": rec.wall_time_s, "label": int(y), "inferred": label,
        "label_correct": label == int(y), "scores": image_scores(rec.samples[:1] if rec.samples.numel() else None, x),
        "mean_image": image_scores(aux.mean(), x),
        "label_only": image_scores(class_means[label] if label >= 0 else None, x),
        "start": image_scores(rec.initial[:1] if rec.initial is not None else None, x),
        "recon_uint8": encode_pixels(rec.samples[0]) if rec.samples.numel() else None,
    }
    facts = rec.diagnostics
    if "analytic" in facts:
        out["analytic"] = facts["analytic"]
    if "features" in facts and facts["features"]:
        got = torch.tensor(facts["features"][0], dtype=torch.float64)
        got = got / timesteps if timesteps else got
        truth = true_features.double()
        out["feature_rel_error"] = float((got - truth).norm() / truth.norm().clamp_min(1e-30))
        out["feature_exact_counts"] = bool(timesteps) and bool(torch.equal((got * timesteps).round(),
                                                                           (truth * timesteps).round()))
    for key in ("spike_flips", "decoder", "firing_rates"):
        if key in facts:
            out[key] = facts[key]
    return out


def run_group(args, log: RecordLog, done: set, spec: ModelSpec, seed: int, digits: list[int], test, aux,
              names: tuple[str, ...]) -> None:
    """Every attack on one global model's victims; finished (attack, digit) pairs are skipped."""
    key = (spec.name, spec.init, seed)
    if all((*key, name, d) in done for name in names for d in digits[:args.opt_digits]) and \
            all((*key, name, d) in done for name in names if name in PHASES[0] for d in digits):
        return
    xs, ys = test.samples[digits], test.labels[digits]
    observed = [client_update(spec, seed, x, y, CLIENT_LR) for x, y in zip(xs, ys)]  # the server's view
    model = learned.global_model(observed[0], torch.device("cpu"))
    true_h = learned.forward_features(model, xs)[0]  # ground truth features, for the analytic check only
    timesteps = spec.timesteps if spec.name == "snn-lenet" else None
    base = AttackConfig(seed=seed, auxiliary=aux, learned_samples=args.aux_used, learned_epochs=args.epochs,
                        learned_hidden=args.width, time_budget_s=args.time_budget)
    ig_steps = args.ig_iterations if spec.name == "snn-lenet" else args.ig_iterations_ann
    plans = [("analytic", base, len(digits)), ("learned", base, len(digits)),
             ("idlg", replace(base, iterations=args.idlg_iterations), args.opt_digits),
             ("ig", replace(base, iterations=ig_steps), args.opt_digits)]
    if spec.name == "snn-lenet":
        plans.append(("ig-relaxed", replace(base, iterations=args.ig_iterations, relax_spikes=True), args.opt_digits))
    for name, config, count in plans:
        if name not in names:
            continue
        todo = [i for i in range(count) if (*key, name, digits[i]) not in done]
        if not todo:
            continue
        cpu, wall = time.process_time(), time.perf_counter()
        attack = "ig" if name == "ig-relaxed" else name
        recs = reconstruct_all([observed[i] for i in todo], config, attack)
        cpu_each, wall_each = (time.process_time() - cpu) / len(todo), (time.perf_counter() - wall) / len(todo)
        for i, rec in zip(todo, recs):
            line = {"model": spec.name, "init": spec.init, "seed": seed, "attack": name, "digit": digits[i],
                    "position": i, "cpu_s_share": cpu_each, "wall_s_share": wall_each, "auxiliary": aux.source,
                    **record(rec, xs[i], ys[i], aux, true_h[i], timesteps)}
            log.append(line)
        scored = [r.samples.numel() > 0 for r in recs]
        print(f"{spec.name} {spec.init} seed {seed} {name}: {len(todo)} digits, {sum(scored)} with images, "
              f"{cpu_each:.2f} CPU-s each", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--out", type=Path, default=Path("simulations/results/adaptive"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--digits", type=int, default=34, help="test digits per model seed")
    parser.add_argument("--opt-digits", type=int, default=4, help="of those, attacked by iDLG and IG")
    parser.add_argument("--aux", type=int, default=10000, help="MNIST train images the attacker holds")
    parser.add_argument("--aux-used", type=int, default=5000, help="of those, simulated per decoder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--idlg-iterations", type=int, default=20)
    parser.add_argument("--ig-iterations", type=int, default=50, help="IG steps on SNN-LeNet")
    parser.add_argument("--ig-iterations-ann", type=int, default=200, help="IG steps on LeNet (cheaper per step)")
    parser.add_argument("--time-budget", type=float, default=60.0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--inits", default=",".join(INITS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    log = RecordLog(args.out / "records.jsonl")
    done = {(r["model"], r["init"], r["seed"], r["attack"], r["digit"]) for r in read_jsonl(args.out / "records.jsonl")}
    split = load_dataset("mnist", args.data_dir)
    train, test = split.train, split.test
    pick = torch.as_tensor(sample_indices("mnist-aux", len(train), args.aux, 0))
    aux = AuxiliaryData(train.samples[pick], train.labels[pick], train.num_classes,
                        f"mnist train split, {args.aux} seeded draws (victims: test digits)")
    digits_all = sample_indices("mnist-test", len(test), args.seeds * args.digits, 0)
    assert_disjoint(aux, test.samples[torch.as_tensor(digits_all)])
    with open(args.out / "invocations.jsonl", "a") as f:
        f.write(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **provenance()}) + "\n")
    for init in args.inits.split(","):  # adaptive attacks on every seed first, then the optimisation attacks;
        for phase in PHASES:  # seed by seed, both fleets, so that what has finished is always paired
            for seed in range(args.seeds):
                for name in args.models.split(","):
                    spec = ModelSpec(name, (1, 28, 28), 10, init=init)
                    digits = digits_all[seed * args.digits:(seed + 1) * args.digits]
                    run_group(args, log, done, spec, seed, digits, test, aux, phase)


def assert_disjoint(aux: AuxiliaryData, victims: torch.Tensor) -> None:
    """Stop if any victim digit is also an auxiliary image (byte-equal)."""
    held = {row.tobytes() for row in aux.samples.flatten(1).numpy()}
    if any(row.tobytes() in held for row in victims.flatten(1).numpy()):
        raise SystemExit("a victim digit is among the auxiliary images")


if __name__ == "__main__":
    main()
