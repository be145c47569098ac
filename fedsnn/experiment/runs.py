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
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedsnn.provenance import provenance



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


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON file that must not exist yet (results are never overwritten)."""
    with open(path, "x") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


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
            f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
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
