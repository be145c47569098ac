"""Each real loader on small synthetic files in that dataset's own on-disk format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from fedsnn.task.data import class_histograms, load_dataset, partition
from fedsnn.task.data.idx import read_idx, write_idx
from fedsnn.task.data.loaders import load_att_faces, load_cifar100, load_dvs_gesture, load_lfw, load_mnist
from fedsnn.errors import DataNotFoundError

rng = np.random.default_rng(0)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path, gz):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels)
    assert np.array_equal(read_idx(raw / f"train-images-idx3-ubyte{suffix}"), images)
    split = load_mnist(tmp_path)
    assert split.train.samples.shape == (7, 1, 28, 28)
    assert split.train.samples[3, 0, 5, 6] == pytest.approx(images[3, 5, 6] / 255)
    assert split.test.labels.tolist() == list(range(7))


def test_embedded_mnist_sample_ships_with_the_package():
    split = load_dataset("mnist")
    assert split.train.samples.shape == (5000, 1, 28, 28) and len(split.test) == 1000
    assert set(split.train.labels.tolist()) == set(range(10))


def test_cifar100_pickles(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 6), ("test", 4)):
        data = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": list(range(n))}
        (folder / name).write_bytes(pickle.dumps(data))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    split = load_cifar100(tmp_path)
    assert split.train.samples.shape == (6, 3, 32, 32) and split.train.num_classes == 100
    assert split.train.class_names[2] == "c2"


def test_att_faces_pgm_folders(tmp_path):
    for s in range(1, 4):
        (tmp_path / "att_faces" / f"s{s}").mkdir(parents=True)
        for i in range(1, 11):
            Image.fromarray(rng.integers(0, 256, (112, 92), dtype=np.uint8)).save(tmp_path / "att_faces" / f"s{s}" / f"{i}.pgm")
    split = load_att_faces(tmp_path)
    assert split.train.samples.shape == (24, 1, 112, 92) and len(split.test) == 6  # 8 / 2 per subject
    assert split.test.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_lfw_jpeg_identity_folders(tmp_path):
    for person in ("Ada_Lovelace", "Alan_Turing"):
        folder = tmp_path / "lfw" / "lfw-deepfunneled" / person
        folder.mkdir(parents=True)
        for i in range(1, 6):
            Image.fromarray(rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)).save(folder / f"{person}_{i:04d}.jpg")
    split = load_lfw(tmp_path, image_size=32, seed=1)
    assert split.train.samples.shape[1:] == (3, 32, 32)
    assert len(split.train) + len(split.test) == 10 and len(split.test) == 2
    assert split.train.class_names == ("Ada_Lovelace", "Alan_Turing")


def test_dvs_gesture_tonic_event_arrays(tmp_path):
    for folder, n in (("ibmGestureTrain", 3), ("ibmGestureTest", 2)):
        user = tmp_path / "dvs_gesture" / "DVSGesture" / folder / "user01_fluorescent"
        user.mkdir(parents=True)
        for label in range(n):
            t = np.sort(rng.integers(0, 1000, 500))  # ms, as tonic's preprocessed files
            events = np.stack([rng.integers(0, 128, 500), rng.integers(0, 128, 500), rng.integers(0, 2, 500), t], 1)
            np.save(user / f"{label}.npy", events.astype(np.float64))
    split = load_dvs_gesture(tmp_path, timesteps=5)
    assert split.train.samples.shape == (3, 5, 2, 128, 128) and split.train.is_event
    assert set(split.train.samples.unique().tolist()) <= {0.0, 1.0}
    assert split.train.samples.sum() > 0 and split.train.num_classes == 11


@pytest.mark.parametrize("loader,name", [(load_mnist, "mnist"), (load_cifar100, "cifar100"), (load_lfw, "lfw"),
                                         (load_att_faces, "att-faces"), (load_dvs_gesture, "dvs-gesture")])
def test_missing_files_name_what_is_expected(tmp_path, loader, name):
    with pytest.raises(DataNotFoundError) as err:
        loader(tmp_path)
    assert name in str(err.value) and str(tmp_path) in str(err.value) and "How to get them" in str(err.value)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_partitions_cover_every_sample_exactly_once(scheme):
    labels = rng.integers(0, 10, 1000)
    shards = partition(labels, 7, scheme, alpha=0.3, seed=5)
    joined = np.concatenate(shards)
    assert len(joined) == 1000 and len(np.unique(joined)) == 1000
    again = partition(labels, 7, scheme, alpha=0.3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again))
    other = partition(labels, 7, scheme, alpha=0.3, seed=6)
    assert not all(np.array_equal(a, b) for a, b in zip(shards, other))
    hist = class_histograms(labels, shards, 10)
    assert np.array(hist).sum() == 1000


def test_dirichlet_small_alpha_is_skewed_large_alpha_is_balanced():
    labels = np.repeat(np.arange(10), 200)

    def skew(alpha: float) -> float:
        hist = np.array(class_histograms(labels, partition(labels, 5, "dirichlet", alpha=alpha, seed=0), 10), float)
        p = hist / hist.sum(1, keepdims=True)
        return float(np.abs(p - 0.1).sum(1).mean())

    assert skew(0.1) > 3 * skew(100.0)


def test_partition_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        partition(np.zeros(10, dtype=int), 2, "dirichlet", alpha=0.0)


def test_iid_is_equal_pieces_of_one_seeded_permutation():
    """Flower's IidPartitioner on the seeded shuffle gives the shards fedsnn always had."""
    labels = rng.integers(0, 10, 1003)
    expected = [np.sort(s) for s in np.array_split(np.random.default_rng(4).permutation(1003), 6)]
    assert all(np.array_equal(a, b) for a, b in zip(partition(labels, 6, "iid", seed=4), expected))


def test_pathological_gives_each_client_its_classes():
    labels = np.repeat(np.arange(10), 50)
    shards = partition(labels, 10, "pathological", seed=3, classes_per_partition=2)
    assert all(len(np.unique(labels[s])) == 2 for s in shards)
    joined = np.concatenate(shards)
    assert len(np.unique(joined)) == len(joined) and set(labels[joined]) == set(range(10))  # client i has class i
    assert all(np.array_equal(a, b) for a, b in zip(shards, partition(labels, 10, "pathological", seed=3)))


def test_shard_partitioning_cuts_label_sorted_shards():
    labels = np.repeat(np.arange(10), 40)
    shards = partition(labels, 4, "shard", seed=1, shards_per_partition=2)
    assert [len(s) for s in shards] == [100] * 4  # 400 samples in 8 shards of 50, two per client
    assert all(len(np.unique(labels[s])) <= 4 for s in shards)  # a shard of sorted labels spans 1-2 classes
    joined = np.concatenate(shards)
    assert len(np.unique(joined)) == len(joined)
    assert not all(np.array_equal(a, b) for a, b in zip(shards, partition(labels, 4, "shard", seed=2)))


def test_too_small_shards_name_the_knob():
    with pytest.raises(ValueError, match="classes_per_partition"):
        partition(np.repeat(np.arange(10), 3), 5, "pathological", classes_per_partition=1, min_size=5)


def test_samples_are_floats_in_unit_range():
    x = load_dataset("mnist").test.samples
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
