import pickle

import numpy as np
import pytest
import torch

from common.data import (CifarNotFoundError, artificial_balance, balanced_bagging, build_augment,
                         class_balanced_sample_weights, class_groups, load_cifar, longtail_counts,
                         longtail_indices, random_crop, random_flip, select_classes, thesis_split)


def test_longtail_counts_cifar10_ratio_100():
    assert longtail_counts(5000, 10, 0.01) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_longtail_counts_profiles():
    assert longtail_counts(500, 100, 0.01)[0] == 500 and longtail_counts(500, 100, 0.01)[-1] == 5
    assert longtail_counts(100, 4, 0.1, "step") == [100, 100, 10, 10]
    pareto = longtail_counts(1000, 10, 0.01, "pareto")
    assert pareto[0] == 1000 and pareto[-1] == 10 and all(a >= b for a, b in zip(pareto, pareto[1:]))
    assert min(longtail_counts(50, 100, 0.01, min_count=1)) == 1
    with pytest.raises(ValueError):
        longtail_counts(10, 10, 100)


def test_longtail_indices_match_ldam_drw_global_seed_procedure():
    labels = np.random.default_rng(3).integers(0, 5, 400)
    counts = [60, 40, 20, 10, 5]
    np.random.seed(7)  # LDAM-DRW: global seed once, then per class shuffle, keep the first n
    expected = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        expected.append(idx[:n])
    got = longtail_indices(labels, counts, seed=7)
    np.testing.assert_array_equal(got, np.concatenate(expected))
    assert np.bincount(labels[got]).tolist() == counts


def test_synthetic_roundtrip_through_load_cifar(synthetic_root):
    for name, n_cls, n_train, n_test in (("cifar10", 10, 120, 30), ("cifar100", 100, 60, 10)):
        x, y, classes = load_cifar(name, synthetic_root, train=True)
        assert x.shape == (n_cls * n_train, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
        assert np.bincount(y).tolist() == [n_train] * n_cls and len(classes) == n_cls
        xt, yt, _ = load_cifar(name, synthetic_root, train=False)
        assert len(xt) == n_cls * n_test
    assert load_cifar("cifar100", synthetic_root)[2][:2] == ["apple", "aquarium_fish"]


def test_synthetic_files_read_like_torchvision_reads_them(synthetic_root):
    with open(synthetic_root / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="latin1")  # what torchvision's CIFAR100 does
    assert entry["data"].shape == (6000, 3072) and len(entry["fine_labels"]) == 6000


def test_missing_folder_error_names_path_files_and_fix(tmp_path):
    with pytest.raises(CifarNotFoundError) as err:
        load_cifar("cifar100", tmp_path / "nowhere", train=True)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-100-python") in msg
    assert "train" in msg and "meta" in msg and "LTREPRO_DATA" in msg and "python -m common.data.fetch --root DIR cifar100" in msg


def test_thesis_split_sizes_disjointness_and_order():
    labels = np.repeat(np.arange(100), 500)
    s = thesis_split(labels)
    assert len(s["train"]) == 45000 and len(s["test"]) == 5000
    assert not set(s["train"]) & set(s["test"])
    assert set(s["lt_train"]) <= set(s["train"]) and set(s["lt_test"]) <= set(s["test"])
    lt_counts = np.bincount(labels[s["lt_train"]], minlength=100)
    assert lt_counts[0] == 450 and lt_counts[-1] == 4 and all(np.diff(lt_counts) <= 0)
    test_counts = np.bincount(labels[s["lt_test"]], minlength=100)
    assert test_counts[0] == 50 and test_counts.min() == 1 and len(s["lt_test"]) == 1051
    np.testing.assert_array_equal(thesis_split(labels)["train"], s["train"])  # seeded


def test_class_groups():
    counts = [500, 150, 101, 100, 20, 19, 1]
    assert class_groups(counts, "shot").tolist() == [0, 0, 0, 1, 1, 2, 2]
    thirds = class_groups(longtail_counts(450, 100, 0.01), "thirds")
    assert np.bincount(thirds).tolist() == [33, 33, 34] and thirds[0] == 0 and thirds[-1] == 2


def test_select_classes_renumbers():
    idx, y = select_classes(np.array([5, 1, 0, 3, 1]), [1, 5])
    assert idx.tolist() == [0, 1, 4] and y.tolist() == [1, 0, 0]


def test_sampling_helpers():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 4)
    w = class_balanced_sample_weights(labels)
    assert np.allclose(np.bincount(labels, weights=w), 1.0)
    bal = artificial_balance(labels, 20, seed=0)
    assert np.bincount(labels[bal]).tolist() == [20, 20, 20]
    bags = balanced_bagging(labels, 25, seed=0)  # 50 // 25 = 2 learners; median count 10
    assert len(bags) == 2
    majority = [set(b[labels[b] == 0]) for b in bags]
    assert not majority[0] & majority[1] and len(majority[0] | majority[1]) == 50
    for b in bags:
        assert (labels[b] == 1).sum() == 10 and (labels[b] == 2).sum() == 4


def test_random_crop_and_flip_are_per_sample_shifts():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = random_crop(x, 8, 2)
    for i in range(2):
        nz = out[i, 0][out[i, 0] > 0]
        assert torch.isin(nz, x[i, 0]).all()  # every pixel comes from the same image
    flipped = random_flip(x, p=1.0)
    assert torch.equal(flipped, x.flip(-1))


@pytest.mark.parametrize("name", ["none", "standard", "medium", "strong"])
def test_augment_pipelines(name):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = build_augment(name, (0.5,) * 3, (0.25,) * 3)(x)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.min() >= -2.0 - 1e-5 and out.max() <= 2.0 + 1e-5
    big = build_augment(name, size=64)(x)
    assert big.shape == (16, 3, 64, 64)


def test_resize_first_crops_and_flips_the_float_resized_image():
    """Thesis order: Resize(224) -> RandomCrop(pad 4) -> flip -> normalise, on float images as the
    test transform sees them (no rounding back to uint8); AutoAugment still gets uint8."""
    from common.data import augment as A

    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(3)
    out = A.build_augment("standard", A.LDAM_MEAN, A.LDAM_STD, size=48, resize_first=True)(x)
    torch.manual_seed(3)
    by_hand = A.normalize(A.random_flip(A.random_crop(A.resize(x, 48), 48, 4)), A.LDAM_MEAN, A.LDAM_STD)
    assert torch.equal(out, by_hand)
    strong = A.build_augment("strong", A.LDAM_MEAN, A.LDAM_STD, size=48, resize_first=True)(x)
    assert strong.shape == (6, 3, 48, 48) and strong.dtype == torch.float32
