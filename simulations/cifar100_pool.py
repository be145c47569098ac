"""Pool a CIFAR-100 subset's train and test images into one training pickle, for attack studies.

``simulations.table4`` draws its victims from the training split; the genuine
subset in ../shared/data/cifar100 has 5 training and 20 test images. Gradient
inversion attacks a fresh, untrained model, so a victim's split does not
matter, and pooling lets all 25 images be attacked::

    python -m simulations.cifar100_pool /work/shared/data /tmp/cifar25
    python -m simulations.table4 --datasets cifar100 --data-dir /tmp/cifar25 ...

Writes <dst>/cifar100/cifar-100-python/{train,test,meta}: train = the source's
train images then its test images (labels alongside), test and meta copied.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

import numpy as np

from fedsnn.task.data import load_dataset


def pool(src: Path, dst: Path) -> int:
    """Write the pooled copy; returns the number of training images it holds."""
    split = load_dataset("cifar100", str(src))  # validates the source (counts, shapes) first
    source, target = src / "cifar100" / "cifar-100-python", dst / "cifar100" / "cifar-100-python"
    target.mkdir(parents=True, exist_ok=True)
    with open(source / "train", "rb") as f:
        train = pickle.load(f, encoding="bytes")
    with open(source / "test", "rb") as f:
        test = pickle.load(f, encoding="bytes")
    pooled = {b"data": np.concatenate([train[b"data"], test[b"data"]]),
              b"fine_labels": list(train[b"fine_labels"]) + list(test[b"fine_labels"]),
              b"batch_label": b"pooled train + test (simulations.cifar100_pool)"}
    (target / "train").write_bytes(pickle.dumps(pooled, protocol=2))
    for name in ("test", "meta"):
        shutil.copyfile(source / name, target / name)
    return len(split.train) + len(split.test)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulations.cifar100_pool", description=__doc__.splitlines()[0])
    p.add_argument("src", help="data-dir holding cifar100/cifar-100-python")
    p.add_argument("dst", help="data-dir to write the pooled copy to")
    args = p.parse_args(argv)
    print(f"{pool(Path(args.src), Path(args.dst))} images in {args.dst}/cifar100/cifar-100-python/train")


if __name__ == "__main__":
    main()
