"""Leakage records: scores every reconstruction the curious server makes and records it at once.

    leakage.jsonl                       one line per finished attack, flushed
    reconstructions/r003-p1-idlg.pt     originals and reconstructions (for grids)

The recorder is the evaluator: it receives the attacker's ``Reconstruction``
and re-derives the ground truth itself (``fedsnn.analysis.scoring``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedsnn.experiment.config import RunConfig
from fedsnn.analysis.scoring import score_reconstruction
from fedsnn.experiment.ground_truth import ground_truth
from fedsnn.analysis.metrics import Judge, summarise
from fedsnn.experiment.runs import RecordLog

log = logging.getLogger("fedsnn")


class LeakageRecorder:
    def __init__(self, cfg: RunConfig, run_dir: Path, num_partitions: int, judge: Judge | None, judge_note: str = "") -> None:
        self.cfg, self.dir, self.num_partitions = cfg, run_dir, num_partitions
        self.judge, self.judge_note = judge, judge_note
        self.log = RecordLog(run_dir / "leakage.jsonl")
        (run_dir / "reconstructions").mkdir(exist_ok=True)
        self._round: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def record(self, server_round: int, partition_id: int, attack: str, reconstruction) -> dict[str, Any]:
        """Score one attack's output against the re-derived batch; append its line."""
        line: dict[str, Any] = {
            "round": server_round, "partition": partition_id, "model": self.cfg.model, "dataset": self.cfg.dataset,
            "attack": attack, "status": reconstruction.status, "reason": reconstruction.reason,
            "seconds": round(reconstruction.wall_time_s, 3), "iterations": reconstruction.iterations,
            "evaluations": reconstruction.evaluations, "final-loss": _finite(reconstruction.final_loss),
            "diagnostics": reconstruction.diagnostics, "config-hash": self.cfg.digest(),
            "judge": self.judge_note or None,
        }
        samples = reconstruction.samples
        if reconstruction.ok and samples.numel() and torch.isfinite(samples).all():
            try:
                truth = ground_truth(self.cfg, partition_id, self.num_partitions, server_round)
                records, matched = score_reconstruction(samples, reconstruction.labels, truth, self.judge)
                line["samples"] = [r.as_dict() for r in records]
                line["summary"] = summarise(records)
                line["inferred-labels"] = reconstruction.labels.tolist()
                line["true-labels"] = truth.labels.tolist()[:64]
                line["client-samples"] = len(truth)
                path = self.dir / "reconstructions" / f"r{server_round:03d}-p{partition_id}-{attack}.pt"
                torch.save({"original": matched.samples, "labels": matched.labels,
                            "reconstruction": samples[: len(matched)].detach().cpu(), "model": self.cfg.model}, path)
            except Exception as exc:  # noqa: BLE001 - scoring trouble is recorded, never fatal
                line["status"], line["reason"] = "failed", f"scoring failed: {type(exc).__name__}: {exc}"
        self.log.append(line)
        self._round[attack].append(line)
        return line

    def summarise_round(self, server_round: int) -> None:
        """One log line per attack: success rate, median PSNR/SSIM, ASR."""
        for attack, lines in sorted(self._round.items()):
            scored = [s for line in lines for s in line.get("samples", [])]
            statuses = ", ".join(f"{k}={v}" for k, v in sorted(Counter(line["status"] for line in lines).items()))
            if scored:
                asr = [s["judge_correct"] for s in scored if s["judge_correct"] is not None]
                used = sum(line.get("client-samples", 0) for line in lines)
                matched = f" matched among {used} used" if used > len(scored) else ""
                log.info(
                    "leakage round %d %s on %s: %d samples%s, success %.0f%%, median PSNR %.1f dB, median SSIM %.3f, "
                    "ASR %s [%s]", server_round, attack, self.cfg.model, len(scored), matched,
                    100 * np.mean([s["success"] for s in scored]), np.median([s["psnr"] for s in scored]),
                    np.nanmedian([s["ssim"] for s in scored]), f"{100 * np.mean(asr):.0f}%" if asr else "n/a", statuses,
                )
            else:
                log.info("leakage round %d %s on %s: nothing scored [%s]", server_round, attack, self.cfg.model, statuses)
        self._round.clear()


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
