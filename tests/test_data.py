"""Each image loader on small synthetic files in that dataset's own on-disk format, and what it says
when a file is missing, truncated or corrupt (event loaders: test_data_events.py)."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from fedsnn.task.data import class_histograms, load_dataset, partition
from fedsnn.task.data.idx import read_idx, write_idx
from fedsnn.task.data.events import load_dvs_gesture, load_nmnist
from fedsnn.task.data.loaders import load_att_faces, load_cifar100, load_lfw, load_mnist
from fedsnn.errors import DataFormatError, DataNotFoundError
from simulations.cifar100_pool import pool

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


def write_mnist(raw, suffix, n=7):
    raw.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_mnist_idx_names_the_file_and_its_declared_size(tmp_path, cut):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    write_mnist(raw, "")
    victim = raw / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[: int(victim.stat().st_size * cut)])
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte.*expected 5504 bytes \(shape \(7, 28, 28\)"):
        load_mnist(tmp_path)


def test_truncated_mnist_gz_names_the_file(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    write_mnist(raw, ".gz")
    victim = raw / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-30])
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz.*gzip"):
        load_mnist(tmp_path)


def test_mnist_label_count_must_match_the_images(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    write_mnist(raw, "")
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(6, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="train-labels-idx1-ubyte.*7 labels"):
        load_mnist(tmp_path)


def test_gzip_that_is_not_an_idx_file(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"PK\x03\x04 not idx")
    with pytest.raises(DataFormatError, match="IDX header"):
        read_idx(path)


def test_embedded_mnist_sample_ships_with_the_package():
    split = load_dataset("mnist")
    assert split.train.samples.shape == (5000, 1, 28, 28) and len(split.test) == 1000
    assert set(split.train.labels.tolist()) == set(range(10))


def test_cifar100_pickles(tmp_path):
    make_cifar(tmp_path)
    split = load_cifar100(tmp_path)
    assert split.train.samples.shape == (6, 3, 32, 32) and split.train.num_classes == 100
    assert split.train.class_names[2] == "c2"


def make_att_faces(root, shape=(12, 10)):
    for s in range(1, 41):
        (root / "att_faces" / f"s{s}").mkdir(parents=True)
        for i in range(1, 11):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / "att_faces" / f"s{s}" / f"{i}.pgm")


def make_cifar(root, train=6, test=4):
    folder = root / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", train), ("test", test)):
        data = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": list(range(n))}
        (folder / name).write_bytes(pickle.dumps(data))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    return folder


def test_truncated_cifar100_pickle_names_the_file(tmp_path):
    folder = make_cifar(tmp_path)
    (folder / "test").write_bytes((folder / "test").read_bytes()[:500])
    with pytest.raises(DataFormatError, match=r"cifar-100-python/test.*pickle"):
        load_cifar100(tmp_path)


def test_att_faces_pgm_folders(tmp_path):
    make_att_faces(tmp_path)
    split = load_att_faces(tmp_path)
    assert split.train.samples.shape == (320, 1, 12, 10) and len(split.test) == 80  # 8 / 2 per subject
    assert split.test.labels.tolist()[:6] == [0, 0, 1, 1, 2, 2] and split.train.class_names[39] == "s40"


def test_att_faces_names_a_deleted_pgm(tmp_path):
    make_att_faces(tmp_path)
    (tmp_path / "att_faces" / "s17" / "4.pgm").unlink()
    with pytest.raises(DataNotFoundError, match=r"s17/4\.pgm"):
        load_att_faces(tmp_path)


def test_att_faces_names_a_corrupt_pgm(tmp_path):
    make_att_faces(tmp_path)
    bad = tmp_path / "att_faces" / "s3" / "9.pgm"
    bad.write_bytes(bad.read_bytes()[:10])
    with pytest.raises(DataFormatError, match=r"s3/9\.pgm"):
        load_att_faces(tmp_path)


def make_lfw(root, counts=(("Ada_Lovelace", 5), ("Alan_Turing", 5))):
    for person, n in counts:
        folder = root / "lfw" / "lfw-deepfunneled" / person
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{person}_{i:04d}.jpg")


def test_lfw_jpeg_identity_folders(tmp_path):
    make_lfw(tmp_path)
    split = load_lfw(tmp_path, image_size=32, seed=1)
    assert split.train.samples.shape[1:] == (3, 32, 32)
    assert len(split.train) + len(split.test) == 10 and len(split.test) == 2
    assert split.train.class_names == ("Ada_Lovelace", "Alan_Turing")


def test_lfw_lists_images_missing_from_a_folder_or_from_lfw_names(tmp_path):
    make_lfw(tmp_path)
    (tmp_path / "lfw" / "lfw-deepfunneled" / "Ada_Lovelace" / "Ada_Lovelace_0003.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="Ada_Lovelace_0003.jpg"):
        load_lfw(tmp_path)
    (tmp_path / "lfw" / "lfw-names.txt").write_text("Ada_Lovelace\t3\nAlan_Turing\t6\nNot_Here\t2\n")
    (tmp_path / "lfw" / "lfw-deepfunneled" / "Ada_Lovelace" / "Ada_Lovelace_0004.jpg").rename(
        tmp_path / "lfw" / "lfw-deepfunneled" / "Ada_Lovelace" / "Ada_Lovelace_0003.jpg")
    with pytest.raises(DataNotFoundError, match="Alan_Turing_0006.jpg") as err:
        load_lfw(tmp_path)
    assert "Ada_Lovelace" not in str(err.value) and "Not_Here" not in str(err.value)  # only identities present


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
                                         (load_att_faces, "att-faces"), (load_dvs_gesture, "dvs-gesture"),
                                         (load_nmnist, "nmnist")])
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


def test_cifar100_pool_puts_train_then_test_images_in_the_training_pickle(tmp_path):
    make_cifar(tmp_path / "src", train=3, test=2)
    assert pool(tmp_path / "src", tmp_path / "dst") == 5
    source, pooled = load_cifar100(tmp_path / "src"), load_cifar100(tmp_path / "dst")
    assert torch.equal(pooled.train.samples, torch.cat([source.train.samples, source.test.samples]))
    assert pooled.train.labels.tolist() == [0, 1, 2, 0, 1] and torch.equal(pooled.test.samples, source.test.samples)
