import pytest
import torch

from common.models import MODELS, PretrainedWeightsUnavailable, build_model, freeze_backbone
from common.models import library


@pytest.mark.parametrize("name", ["resnet32", "mobilenet_v2", "efficientnet_b0", "resnet50"])
def test_forward_features_then_classifier_equals_forward(name):
    torch.manual_seed(0)
    model = build_model(name, 7).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 7)
        assert torch.allclose(model.classifier(model.forward_features(x)), out, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet32", "mobilenet_v2"])
def test_logits_stay_float32_under_bf16_autocast(name):
    torch.manual_seed(0)
    model = build_model(name, 10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, features = model(x), model.forward_features(x)
    assert features.dtype == torch.bfloat16 and logits.dtype == torch.float32
    assert torch.equal(logits, model.classifier(features.float()))


def test_registry_has_every_model():
    assert {"resnet32", "resnet50", "mobilenet_v2", "convnext_base", "vit_b_16", "efficientnet_b0",
            "efficientnet_b1", "efficientnet_b2", "vit_base_patch16_224"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet33", 10)


def test_resnet32_matches_ldam_drw_size():
    params = sum(p.numel() for p in build_model("resnet32", 10).parameters())
    assert params == 464154  # LDAM-DRW's resnet32 for 10 classes: 0.46M


def test_local_weights_file_loads_with_weights_only(tmp_path):
    import torchvision

    net = torchvision.models.mobilenet_v2()
    path = tmp_path / "mobilenet.pth"
    torch.save(net.state_dict(), path)
    model = build_model("mobilenet_v2", 5, weights=path)
    assert torch.equal(model.backbone.features[0][0].weight, net.features[0][0].weight)


def test_pretrained_offline_fails_with_clear_message(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "resnet50", offline)
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        build_model("resnet50", 10, pretrained=True)
    msg = str(err.value)
    assert "ResNet50_Weights.IMAGENET1K_V2" in msg and "resnet50-" in msg and "weights=PATH" in msg
    assert library.pretrained_source("vit_base_patch16_224")["library"] == "timm"


def test_pretrained_weights_load_offline_from_the_cache_paths_we_name(offline_weight_caches):
    """What the offline message tells users to put in place is what pretrained=True loads."""
    import timm
    import torchvision

    torch.manual_seed(0)
    tv, tm = torchvision.models.mobilenet_v2(), timm.create_model("efficientnet_b0")
    offline_weight_caches("mobilenet_v2", tv.state_dict())
    offline_weight_caches("efficientnet_b0", tm.state_dict())
    model = build_model("mobilenet_v2", 10, pretrained=True)
    assert torch.equal(model.backbone.features[0][0].weight, tv.features[0][0].weight)
    model = build_model("efficientnet_b0", 10, pretrained=True)
    assert torch.equal(model.backbone.conv_stem.weight, tm.conv_stem.weight)
    with pytest.raises(PretrainedWeightsUnavailable, match="models--timm--efficientnet_b1"):
        build_model("efficientnet_b1", 10, pretrained=True)  # not in the cache, hub offline


def test_freeze_backbone_leaves_only_classifier_trainable():
    model = build_model("resnet32", 10)
    freeze_backbone(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


def test_classifier_prior_sets_every_sigmoid_to_the_prior():
    from common.experiment import init_classifier_bias

    model = build_model("resnet32", 10)
    init_classifier_bias(model.classifier, 0.1)
    with torch.no_grad():
        start = torch.sigmoid(model.classifier(torch.zeros(1, 64)))
    assert torch.allclose(start, torch.full((1, 10), 0.1))
