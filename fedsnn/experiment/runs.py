"""File primitives of every record: fresh run folders and append-only record files, never overwritten.

The federation's records (``federation_records``), the leakage records
(``leakage_records``) and the studies in simulations/ write through these.

A run folder is ``<output-dir>/<UTC timestamp>-<name>``; if it exists a
numeric suffix is added, so finished results are never replaced. Every
record file is appended and flushed line by line, so a crash keeps every
finished round.
"""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any




def create_run_dir(output_dir: str | Path, name: str) -> Path:
    """Make a fresh run folder; never reuses an existing one."""
    base = Path(output_dir)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = base / (f"{stamp}-{name}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a fresh run folder under {base}")


def strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON text without NaN or Infinity (which are not JSON).

    Each non-finite number becomes null, and the record gets a ``null-reasons``
    field naming where and what it was: {"test-loss": "nan"}.
    """
    reasons: dict[str, str] = {}
    clean = _finite_only(obj, "", reasons)
    if reasons and isinstance(clean, dict):
        clean = {**clean, "null-reasons": {**clean.get("null-reasons", {}), **reasons}}
    return json.dumps(clean, indent=indent, sort_keys=True, default=str, allow_nan=False)


def _finite_only(obj: Any, where: str, reasons: dict[str, str]) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        reasons[where or "value"] = repr(obj)
        return None
    if isinstance(obj, dict):
        return {k: _finite_only(v, f"{where}.{k}" if where else str(k), reasons) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v, f"{where}[{i}]", reasons) for i, v in enumerate(obj)]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return _finite_only(obj.item(), where, reasons)
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON file that must not exist yet (results are never overwritten)."""
    with open(path, "x") as f:
        f.write(strict_json(obj, indent=2) + "\n")


class RecordLog:
    """Append-only JSON-lines log (and optional CSV twin), flushed per record.

    The CSV has fixed columns (``csv_fields``, else the first record's keys);
    list values are written as their length (e.g. the number of failed clients).
    """

    def __init__(self, jsonl: Path, csv_path: Path | None = None, csv_fields: list[str] | None = None) -> None:
        self.jsonl, self.csv_path = jsonl, csv_path
        self._csv_fields = csv_fields

    def append(self, record: dict[str, Any]) -> None:
        with open(self.jsonl, "a") as f:
            f.write(strict_json(record) + "\n")
            f.flush()
        if self.csv_path is not None:
            self._append_csv(record)

    def _append_csv(self, record: dict[str, Any]) -> None:
        flat = {k: (len(v) if isinstance(v, (list, dict)) else v) for k, v in record.items()}
        if self._csv_fields is None:
            self._csv_fields = list(flat)
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            if new:
                csv.DictWriter(f, self._csv_fields).writeheader()
            csv.DictWriter(f, self._csv_fields, extrasaction="ignore").writerow(flat)
            f.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start
