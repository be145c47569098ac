"""Rebuild the embedded MNIST sample: ``python -m fedsnn.task.data.make_embedded RAW_DIR``.

RAW_DIR holds the four MNIST IDX files (gzipped or not).
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np

from fedsnn.task.data.idx import read_idx
from fedsnn.task.data.loaders import EMBEDDED_MNIST


def main(raw: Path, n_train: int = 5000, n_test: int = 1000) -> None:
    def read(stem: str) -> np.ndarray:
        return read_idx(raw / stem if (raw / stem).exists() else raw / f"{stem}.gz")

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        train_images=read("train-images-idx3-ubyte")[:n_train],
        train_labels=read("train-labels-idx1-ubyte")[:n_train].astype(np.uint8),
        test_images=read("t10k-images-idx3-ubyte")[:n_test],
        test_labels=read("t10k-labels-idx1-ubyte")[:n_test].astype(np.uint8),
    )
    EMBEDDED_MNIST.write_text(json.dumps({
        "format": "base64 of a numpy .npz (np.savez_compressed)",
        "why": "Flower ships only text files (.py, .toml, .md, .json) with an app; base64 JSON lets the sample travel",
        "source": "see SOURCE.md",
        "npz_base64": base64.b64encode(buffer.getvalue()).decode(),
    }))
    print(f"wrote {EMBEDDED_MNIST} ({EMBEDDED_MNIST.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
