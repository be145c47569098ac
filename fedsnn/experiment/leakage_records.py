"""Leakage records: scores every reconstruction the curious server makes, beside its controls, and records it at once.

    leakage.jsonl                       one line per finished attack, flushed
    reconstructions/r003-p1-idlg.pt     originals and reconstructions (for grids)

The recorder is the evaluator: it receives the attacker's ``Reconstruction``
and re-derives the ground truth itself (``fedsnn.analysis.scoring``). Every
line also scores the controls (the mean image and the label-only guess from
the attacker's declared auxiliary data, the test split; the attack's starting
dummy) exactly like the reconstruction, and the per-sample gain over the
label-only guess: a reconstruction below that guess shows nothing beyond the
label (REFERENCE.md section 9).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from attacks.core import TIME_GUARD, AuxiliaryData
from fedsnn.analysis import stats
from fedsnn.analysis.metrics import Judge, judge_correct, label_multiset_accuracy, summarise
from fedsnn.analysis.scoring import gains, score_controls, score_reconstruction
from fedsnn.experiment.auxiliary import auxiliary_data
from fedsnn.experiment.config import RunConfig
from fedsnn.experiment.defense import public_parameters
from fedsnn.experiment.ground_truth import ground_truth, round_ground_truth
from fedsnn.experiment.runs import RecordLog

log = logging.getLogger("fedsnn")


class LeakageRecorder:
    def __init__(self, cfg: RunConfig, run_dir: Path, num_partitions: int, judge: Judge | None, judge_note: str = "") -> None:
        self.cfg, self.dir, self.num_partitions = cfg, run_dir, num_partitions
        self.judge, self.judge_note = judge, judge_note
        self.log = RecordLog(run_dir / "leakage.jsonl")
        (run_dir / "reconstructions").mkdir(exist_ok=True)
        self._round: dict[str, list[dict[str, Any]]] = defaultdict(list)

    @cached_property
    def auxiliary(self) -> AuxiliaryData:
        """The controls' source: data the attacker may hold (the test split), built once."""
        return auxiliary_data(self.cfg)

    def record(self, server_round: int, victim: int | tuple[int, ...], attack: str, reconstruction) -> dict[str, Any]:
        """Score one attack's output and its controls against the re-derived batch; append its line.

        ``victim``: a partition id, or a tuple of them for an attack on the round's
        aggregate (secure aggregation): scored against the union of their batches,
        recorded as partition 'aggregate' with its ``partitions``.
        """
        aggregate = isinstance(victim, tuple)
        line: dict[str, Any] = {
            "round": server_round, "partition": "aggregate" if aggregate else victim, "model": self.cfg.model,
            "dataset": self.cfg.dataset,
            "attack": attack, "status": reconstruction.status, "reason": reconstruction.reason,
            "time-guard-fired": reconstruction.reason.startswith(TIME_GUARD),
            "tolerance": self.cfg.attack_tolerance,
            "seconds": round(reconstruction.wall_time_s, 3), "iterations": reconstruction.iterations,
            "evaluations": reconstruction.evaluations, "final-loss": _finite(reconstruction.final_loss),
            "diagnostics": reconstruction.diagnostics, "config-hash": self.cfg.digest(),
            "judge": self.judge_note or None,
        }
        if aggregate:
            line["partitions"] = sorted(victim)
            line["defense"] = public_parameters(self.cfg)
        samples = reconstruction.samples
        if reconstruction.ok and samples.numel() and torch.isfinite(samples).all():
            try:
                truth = (round_ground_truth(self.cfg, victim, self.num_partitions, server_round) if aggregate
                         else ground_truth(self.cfg, victim, self.num_partitions, server_round))
                records, matched = score_reconstruction(samples, reconstruction.labels, truth, self.judge)
                controls = score_controls(matched.samples, matched.labels, self.auxiliary, reconstruction.labels,
                                          reconstruction.initial, self.judge)
                line["samples"] = [r.as_dict() for r in records]
                line["summary"] = summarise(records)
                line["controls-source"] = self.auxiliary.source
                line["controls"] = {name: {"samples": [r.as_dict() for r in rs], "summary": summarise(rs)}
                                    for name, rs in controls.items()}
                line["gains-over-label-only"] = gains(records, controls["label_only"])
                line["inferred-labels"] = reconstruction.labels.tolist()
                line["true-labels"] = truth.labels.tolist()[:64]
                line["label-source"] = truth.label_source  # 'given', or e.g. the DVS cuts' 'inferred ...'
                line["label-multiset-accuracy"] = label_multiset_accuracy(reconstruction.labels[: len(matched)].cpu(),
                                                                          matched.labels)
                line["client-samples"] = len(truth)
                if self.judge is not None:  # ASR's ceiling: the judge on the matched originals themselves
                    line["judge-on-originals"] = judge_correct(self.judge, matched.samples, matched.labels).tolist()
                path = self.dir / "reconstructions" / f"r{server_round:03d}-p{'agg' if aggregate else victim}-{attack}.pt"
                torch.save({"original": matched.samples, "labels": matched.labels,
                            "reconstruction": samples[: len(matched)].detach().cpu(), "model": self.cfg.model}, path)
            except Exception as exc:  # noqa: BLE001 - scoring trouble is recorded, never fatal
                line["status"], line["reason"] = "failed", f"scoring failed: {type(exc).__name__}: {exc}"
        self.log.append(line)
        self._round[attack].append(line)
        return line

    def summarise_round(self, server_round: int) -> None:
        """One log line per attack: success, median PSNR/SSIM, the gain over the label-only guess, ASR with its floor."""
        for attack, lines in sorted(self._round.items()):
            statuses = ", ".join(f"{k}={v}" for k, v in sorted(Counter(line["status"] for line in lines).items()))
            scored = [s for line in lines for s in line.get("samples", [])]
            if scored:
                log.info("leakage round %d %s on %s: %s [%s]", server_round, attack, self.cfg.model,
                         round_text(lines), statuses)
            else:
                log.info("leakage round %d %s on %s: nothing scored [%s]", server_round, attack, self.cfg.model, statuses)
        self._round.clear()


def round_text(lines: list[dict[str, Any]]) -> str:
    """The body of one attack's round line, every figure with its 95% interval."""
    scored = [s for line in lines for s in line.get("samples", [])]
    gain = [g for line in lines for g in line.get("gains-over-label-only", [])]
    floor = [s["judge_correct"] for line in lines for s in line.get("controls", {}).get("label_only", {}).get("samples", [])]
    ceiling = [ok for line in lines for ok in line.get("judge-on-originals", [])]
    used = sum(line.get("client-samples", 0) for line in lines)
    matched = f" matched among {used} used" if used > len(scored) else ""
    asr = stats.rate([s["judge_correct"] for s in scored])
    asr_text = "n/a" if asr.n == 0 else (f"{asr.format('.0f', 100, '%')} (label-only floor "
                                         f"{stats.rate(floor).format('.0f', 100, '%')}, ceiling "
                                         f"{stats.rate(ceiling).format('.0f', 100, '%')})")
    guard = sum(line.get("time-guard-fired", False) for line in lines)
    return (
        f"{len(scored)} samples{matched}, success {stats.rate([s['success'] for s in scored]).format('.0f', 100, '%')}, "
        f"median PSNR {stats.median([s['psnr'] for s in scored]).format('.1f')} dB, "
        f"median SSIM {stats.median([s['ssim'] for s in scored]).format('.3f')}, "
        f"gain over label-only guess: SSIM {stats.median([g['ssim'] for g in gain]).format('+.3f')}, "
        f"PSNR {stats.median([g['psnr'] for g in gain]).format('+.1f')} dB, ASR {asr_text}"
        + (f", time guard fired on {guard}" if guard else "")
    )


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
