"""The verdict's report, rebuilt from records alone: table, sentences, paired scatter, bars, grids.

    python -m simulations.verdict_report --out simulations/results/verdict --data-dir /work/shared/data

Every figure carries its interval (``fedsnn.analysis.stats``): Wilson for
rates, percentile bootstrap (2,000 resamples, seeded) for medians, Wilcoxon
signed-rank with a bootstrap interval of the median paired difference for
SNN against LeNet on the same samples. Leakage is read as the gain over the
label-only guess (the class-mean image of the attack's inferred label): a
reconstruction below it shows nothing beyond the label.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fedsnn.analysis import stats  # noqa: E402
from fedsnn.experiment.runs import read_jsonl  # noqa: E402
from fedsnn.task.data import load_dataset  # noqa: E402
from simulations.common import decode_pixels  # noqa: E402

GRID = 8  # reconstructions kept per cell for the grids
MODELS = ("lenet", "snn-lenet")
GAINS = (("ssim", "SSIM gain", ".3f"), ("psnr", "PSNR gain (dB)", ".1f"))


def cells(records: list[dict]) -> dict[tuple[str, str], dict[str, dict[int, dict]]]:
    """(attack, init) -> model -> sample -> record."""
    out: dict[tuple[str, str], dict[str, dict[int, dict]]] = {}
    for r in records:
        out.setdefault((r["attack"], r["init"]), {}).setdefault(r["model"], {})[r["sample"]] = r
    return out


def model_summary(rs: list[dict]) -> dict[str, stats.Interval]:
    """One model's figures in one cell, each with its interval."""
    ctl = lambda name, key: [r[f"control_{name}"][key] for r in rs if f"control_{name}" in r]  # noqa: E731
    return {
        "success": stats.rate([r["success"] for r in rs]),
        "label": stats.rate([r["label_correct"] for r in rs]),
        "asr": stats.rate([r["judge_correct"] for r in rs]),
        "asr_floor": stats.rate(ctl("label_only", "judge_correct")),
        "asr_floor_mean": stats.rate(ctl("mean_image", "judge_correct")),
        "asr_ceiling": stats.rate([r["judge_on_original"] for r in rs]),
        "ssim": stats.median([r["ssim"] for r in rs]),
        "psnr": stats.median([r["psnr"] for r in rs]),
        "ssim_label_only": stats.median(ctl("label_only", "ssim")),
        "psnr_label_only": stats.median(ctl("label_only", "psnr")),
        "ssim_initial": stats.median(ctl("initial", "ssim")),
        "gain_ssim": stats.median([r["gain_ssim"] for r in rs]),
        "gain_psnr": stats.median([r["gain_psnr"] for r in rs]),
    }


def paired_gains(by_model: dict[str, dict[int, dict]]) -> tuple[list[int], dict[str, stats.PairedComparison]]:
    """SNN minus LeNet gain on the samples both models have."""
    shared = sorted(set(by_model.get("lenet", {})) & set(by_model.get("snn-lenet", {})))
    out = {m: stats.paired([by_model["lenet"][i][f"gain_{m}"] for i in shared],
                           [by_model["snn-lenet"][i][f"gain_{m}"] for i in shared]) for m, _, _ in GAINS}
    return shared, out


def sentence(attack: str, init: str, n: int, comparisons: dict[str, stats.PairedComparison]) -> str:
    words = {"less": "significantly less", "more": "significantly more", "not different": "not significantly differently"}
    parts = [f"by {label} the SNN leaks {words[c.direction]}, median paired difference "
             f"{c.difference.format(spec)} (Wilcoxon p = {c.p_value:.2g})"
             for (m, label, spec), c in ((g, comparisons[g[0]]) for g in GAINS)]
    return f"**{attack}, {init} init** (n = {n} paired samples): " + "; ".join(parts) + "."


def table(groups: dict, verdicts: dict) -> list[str]:
    lines = ["| attack | init | model | n | success | label acc | ASR (floor label-only / mean image; ceiling) | median SSIM "
             "| label-only SSIM | SSIM gain | PSNR gain dB | SNN - LeNet SSIM gain | SNN - LeNet PSNR gain | p (SSIM, PSNR) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (attack, init), by_model in sorted(groups.items()):
        shared, comp = verdicts[(attack, init)]
        for model in MODELS:
            if model not in by_model:
                continue
            s = model_summary(list(by_model[model].values()))
            pair = (f"{comp['ssim'].difference.format('.3f')} | {comp['psnr'].difference.format('.1f')} "
                    f"| {comp['ssim'].p_value:.2g}, {comp['psnr'].p_value:.2g}") if model == "snn-lenet" and shared else "| |"
            lines.append(
                f"| {attack} | {init} | {model} | {s['success'].n} | {s['success'].format('.0f', 100, '%')} "
                f"| {s['label'].format('.0f', 100, '%')} | {s['asr'].format('.0f', 100, '%')} "
                f"({s['asr_floor'].format('.0f', 100)} / {s['asr_floor_mean'].format('.0f', 100)}; "
                f"{s['asr_ceiling'].format('.0f', 100)}) | {s['ssim'].format('.3f')} | {s['ssim_label_only'].format('.3f')} "
                f"| {s['gain_ssim'].format('.3f')} | {s['gain_psnr'].format('.1f')} | {pair} |")
    return lines


def scatter(groups: dict, path: Path) -> None:
    """Per (attack, init): each sample's LeNet SSIM gain against its SNN SSIM gain."""
    keys = sorted(groups, key=lambda k: (k[1], k[0]))  # one row per init, one column per attack
    inits = sorted({k[1] for k in keys})
    columns = max(sum(k[1] == init for k in keys) for init in inits)
    fig, axes = plt.subplots(len(inits), columns, figsize=(3.2 * columns, 3.2 * len(inits)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    slots = [axes[inits.index(init)][j] for init in inits for j in range(sum(k[1] == init for k in keys))]
    for ax, key in zip(slots, keys):
        ax.axis("on")
        shared = sorted(set(groups[key].get("lenet", {})) & set(groups[key].get("snn-lenet", {})))
        x = [groups[key]["lenet"][i]["gain_ssim"] for i in shared]
        y = [groups[key]["snn-lenet"][i]["gain_ssim"] for i in shared]
        ax.scatter(x, y, s=8, alpha=0.6)
        ax.plot([-1, 1], [-1, 1], "k--", lw=0.7)
        ax.axhline(0, color="grey", lw=0.5), ax.axvline(0, color="grey", lw=0.5)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="LeNet SSIM gain", ylabel="SNN-LeNet SSIM gain",
               title=f"{key[0]}, {key[1]} init (n={len(shared)})")
        ax.title.set_fontsize(9)
    fig.suptitle("Per-sample SSIM gain over the label-only guess, same digit and model seed (above the diagonal: "
                 "the SNN leaks more)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bars(groups: dict, path: Path) -> None:
    """Median gain over the label-only guess, per cell and model, with bootstrap intervals."""
    keys = sorted(groups)
    fig, axes = plt.subplots(1, len(GAINS), figsize=(1.2 * len(keys) + 3, 3.4), squeeze=False)
    for ax, (metric, label, _) in zip(axes[0], GAINS):
        for k, model in enumerate(MODELS):
            ivs = [stats.median([r[f"gain_{metric}"] for r in groups[key].get(model, {}).values()]) for key in keys]
            pos = np.arange(len(keys)) + (k - 0.5) * 0.38
            ax.bar(pos, [i.value for i in ivs], 0.38, label=model,
                   yerr=[[i.value - i.low for i in ivs], [i.high - i.value for i in ivs]], capsize=2)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(keys)), [f"{a}\n{i}" for a, i in keys], fontsize=7)
        ax.set_ylabel(f"median {label} over label-only guess")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def grids(groups: dict, test, out: Path) -> list[str]:
    """Per (attack, init): original | LeNet | SNN-LeNet rows for the first GRID samples."""
    names = []
    for (attack, init), by_model in sorted(groups.items()):
        rows = [("original", [test.samples[r["test_index"]].numpy() for _, r in sorted(by_model[MODELS[0]].items())
                              if r["sample"] < GRID] if MODELS[0] in by_model else [])]
        for model in MODELS:
            rows.append((model, [decode_pixels(r["recon_uint8"], tuple(test.input_shape)) if "recon_uint8" in r else None
                                 for i, r in sorted(by_model.get(model, {}).items()) if i < GRID]))
        fig, axes = plt.subplots(len(rows), GRID, figsize=(1.1 * GRID, 1.15 * len(rows)), squeeze=False)
        for axrow, (title, images) in zip(axes, rows):
            for ax in axrow:
                ax.set_xticks([]), ax.set_yticks([])
            for ax, image in zip(axrow, images):
                if image is not None:
                    ax.imshow(np.asarray(image)[0], cmap="gray", vmin=0, vmax=1)
            axrow[0].set_ylabel(title, fontsize=7)
        fig.tight_layout()
        name = f"grid-{attack}-{init}.png"
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        names.append(name)
    return names


def report(out: Path, data_dir: str) -> None:
    """(Re)write verdict.md, summary.json and the figures from records.jsonl."""
    records = read_jsonl(out / "records.jsonl")
    if not records:
        return
    groups = cells(records)
    verdicts = {key: paired_gains(by_model) for key, by_model in groups.items()}
    invocations = [i for i in read_jsonl(out / "invocations.jsonl") if "config" in i]
    wall = sum(i["wall_s"] for i in read_jsonl(out / "invocations.jsonl") if "wall_s" in i)
    unfinished = len(invocations) - sum("wall_s" in i for i in read_jsonl(out / "invocations.jsonl"))
    shared = ("samples", "slow_samples", "seeds", "iterations", "default_iterations", "max_eval", "grnn_iterations",
              "tolerance", "timesteps", "lr", "batch", "seed")
    cfg = {k: sorted({i["config"].get(k) for i in invocations} - {None}) for k in shared}
    scatter(groups, out / "paired-scatter.png")
    bars(groups, out / "gains.png")
    grid_names = grids(groups, load_dataset("mnist", data_dir).test, out)
    summary = {f"{a}/{i}/{m}": {k: v.as_dict() for k, v in model_summary(list(rs.values())).items()}
               for (a, i), by_model in groups.items() for m, rs in by_model.items()}
    summary.update({f"{a}/{i}/snn-minus-lenet": {m: c.as_dict() for m, c in v[1].items()} | {"n": len(v[0])}
                    for (a, i), v in verdicts.items()})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    lines = ["# Verdict: does SNN-LeNet leak less than LeNet? (real MNIST, same test digits, paired)", "",
             *[sentence(a, i, len(v[0]), v[1]) for (a, i), v in sorted(verdicts.items())], "",
             f"Settings over the {len(invocations)} invocations: {cfg}.", "",
             f"Wall time of the finished runs that wrote these records: {wall / 60:.1f} min ({unfinished} runs were "
             "stopped before the end; see simulations/README.md); sum of per-attack seconds "
             f"{sum(r['seconds'] for r in records) / 60:.1f} min (2-core machine shared with other jobs).", "",
             "Values are `value [95% interval]`: rates with Wilson intervals, medians with percentile-bootstrap "
             "intervals (2,000 resamples, seed 0). Gain = attack score minus the label-only guess's score on the same "
             "digit (the class-mean image of the attack's inferred label, from the MNIST train split the attacker "
             "declares); SNN - LeNet = median paired difference of the gains (bootstrap interval), p from the Wilcoxon "
             "signed-rank test. ASR floor = the judge's accuracy on the label-only / mean-image guesses; ceiling = on "
             "the originals. SSIM is Wang et al.'s (Gaussian window, sigma 1.5).", "",
             *table(groups, verdicts), "",
             "![paired scatter](paired-scatter.png)", "", "![gains](gains.png)", "",
             *[f"![{n}]({n})" for n in grid_names]]
    (out / "verdict.md").write_text("\n".join(lines) + "\n")
    print((out / "verdict.md").read_text())


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m simulations.verdict_report", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", required=True)
    a = p.parse_args()
    report(a.out, a.data_dir)
