"""Each loss against a value worked out by hand, and against its limiting case."""
import math

import pytest
import torch
import torch.nn.functional as F

from common.losses import LOSSES, build_loss, class_weights

Z = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
Y = torch.tensor([0, 1])
CE0, CE1 = math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))   # CE of each row


def test_ce():
    assert build_loss("ce", [3, 1])(Z, Y).item() == pytest.approx((CE0 + CE1) / 2, rel=1e-6)


def test_wce_inverse_frequency_weights_sum_to_classes():
    w0, w1 = 0.5, 1.5                               # 1/3 : 1, normalised to sum 2
    expected = (w0 * CE0 + w1 * CE1) / (w0 + w1)    # nn.CrossEntropyLoss(weight) mean
    assert build_loss("wce", [3, 1])(Z, Y).item() == pytest.approx(expected, rel=1e-6)


def test_focal_hand_value():
    p0, p1 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))
    expected = ((1 - p0) ** 2 * CE0 + (1 - p1) ** 2 * CE1) / 2
    assert build_loss("focal", [3, 1], gamma=2.0)(Z, Y).item() == pytest.approx(expected, rel=1e-6)


def test_cb_effective_number_weights():
    e0, e1 = (1 - 0.5 ** 3) / 0.5, 1.0              # effective numbers at beta 0.5
    w0, w1 = 1 / e0, 1 / e1
    w0, w1 = 2 * w0 / (w0 + w1), 2 * w1 / (w0 + w1)
    expected = (w0 * CE0 + w1 * CE1) / 2            # Cui et al.: divided by the batch size
    assert build_loss("cb", [3, 1], beta=0.5)(Z, Y).item() == pytest.approx(expected, rel=1e-6)


def test_cb_focal_sigmoid_hand_value():
    z, y = torch.tensor([[1.0, -1.0]]), torch.tensor([0])
    p_t = 1 / (1 + math.exp(-1))                    # both terms have p_t = sigmoid(1)
    expected = 2 * (1 - p_t) * -math.log(p_t)
    assert build_loss("cb_focal", [5, 5], gamma=1.0)(z, y).item() == pytest.approx(expected, rel=1e-6)


def test_cb_focal_softmax_variant_is_weighted_softmax_focal():
    loss = build_loss("cb_focal", [3, 1], beta=0.5, gamma=1.0, variant="softmax")
    per = -(1 - F.softmax(Z, 1)[[0, 1], Y]) * F.log_softmax(Z, 1)[[0, 1], Y]
    assert loss(Z, Y).item() == pytest.approx((loss.weight[Y] * per).mean().item(), rel=1e-6)


def test_balanced_softmax_adds_log_counts():
    expected = (math.log(1 + math.exp(-1) / 3) + math.log(1 + 3 * math.exp(1))) / 2
    assert build_loss("bs", [3, 1])(Z, Y).item() == pytest.approx(expected, rel=1e-6)


def test_logit_adjusted_tau_1_equals_balanced_softmax():
    assert build_loss("la", [3, 1])(Z, Y).item() == pytest.approx(build_loss("bs", [3, 1])(Z, Y).item(), rel=1e-6)
    half = build_loss("la", [3, 1], tau=0.5)(Z, Y).item()
    expected = (math.log(1 + math.exp(-1) / math.sqrt(3)) + math.log(1 + math.sqrt(3) * math.exp(1))) / 2
    assert half == pytest.approx(expected, rel=1e-6)


def test_ldam_margins_and_value():
    loss = build_loss("ldam", [16, 1], max_m=0.5, s=1.0)
    assert loss.margins.tolist() == pytest.approx([0.25, 0.5])   # n^-1/4 = 1/2, 1, scaled to max 0.5
    z, y = torch.zeros(1, 2), torch.tensor([1])
    assert loss(z, y).item() == pytest.approx(math.log(1 + math.exp(0.5)), rel=1e-6)


def test_seql_drops_tail_negatives():
    # frequencies 0.9 / 0.1, lambda 0.5: class 1 is tail; gamma 1 always drops it as a negative
    loss = build_loss("seql", [9, 1], gamma=1.0, lambda_=0.5)
    z = torch.tensor([[1.0, 2.0]])
    assert loss(z, torch.tensor([0])).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(z, torch.tensor([1])).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_drw_switches_weights_on_at_start_epoch():
    loss = build_loss("ldam", [100, 10, 1], drw=True, drw_epoch=3)
    loss.set_epoch(2)
    assert loss.loss.weight is None
    loss.set_epoch(3)
    assert torch.allclose(loss.loss.weight, class_weights([100, 10, 1], "ens", 0.9999))


@pytest.mark.parametrize("name,kwargs", [
    ("focal", {"gamma": 0.0}), ("cb", {"beta": 0.0}), ("la", {"tau": 0.0}),
    ("seql", {"lambda_": 0.0}), ("wce", {}), ("bs", {}),
])
def test_limiting_cases_equal_ce(name, kwargs):
    torch.manual_seed(0)
    z, y = torch.randn(32, 5), torch.randint(0, 5, (32,))
    counts = [7] * 5 if name in ("wce", "bs") else [50, 20, 9, 4, 2]   # uniform counts for wce / bs
    assert build_loss(name, counts, **kwargs)(z, y).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-5)


def test_class_weight_schemes():
    counts = [100, 25, 4]
    ins, isns, ens = (class_weights(counts, s) for s in ("ins", "isns", "ens"))
    for w in (ins, isns, ens):
        assert w.sum().item() == pytest.approx(3.0, rel=1e-5)
    assert (ins / ins[0]).tolist() == pytest.approx([1, 4, 25], rel=1e-5)
    assert (isns / isns[0]).tolist() == pytest.approx([1, 2, 5], rel=1e-5)
    eff = [(1 - 0.9999 ** n) / (1 - 0.9999) for n in counts]
    assert (ens / ens[0]).tolist() == pytest.approx([eff[0] / e for e in eff], rel=1e-5)


def test_every_registered_loss_backpropagates():
    torch.manual_seed(0)
    for name in LOSSES:
        z = torch.randn(8, 4, requires_grad=True)
        loss = build_loss(name, [40, 10, 5, 2])(z, torch.randint(0, 4, (8,)))
        loss.backward()
        assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(z.grad).all(), name


def test_drw_keeps_the_loss_own_weight_before_start():
    loss = build_loss("wce", [100, 10, 1], drw=True, drw_epoch=5)
    own = loss.loss.weight.clone()
    loss.set_epoch(0)
    assert torch.equal(loss.loss.weight, own)
    loss.set_epoch(5)
    assert torch.allclose(loss.loss.weight, class_weights([100, 10, 1], "ens", 0.9999))


def test_a_registered_loss_is_usable_from_configs_and_the_flat_command():
    from common import train as flat
    from common.config import ConfigError, validate_config
    from common.losses import ClassCountLoss, register_loss

    @register_loss("test_margin_ce")
    class MarginCE(ClassCountLoss):
        def __init__(self, class_counts, margin: float = 0.5, weight=None):
            super().__init__(class_counts, weight)
            self.margin = margin

        def forward(self, logits, targets):
            return F.cross_entropy(logits - self.margin * F.one_hot(targets, logits.shape[1]), targets)

    try:
        raw = {"data": {"dataset": "cifar10"}, "model": {"name": "resnet32"}, "loss": {"name": "test_margin_ce"}}
        cfg = validate_config({**raw, "loss": {"name": "test_margin_ce", "margin": 0.3}})
        assert cfg.loss.model_extra == {"margin": 0.3}
        with pytest.raises(ConfigError, match="margn"):
            validate_config({**raw, "loss": {"name": "test_margin_ce", "margn": 0.3}})
        assert "--loss-margin" in flat.config_flags()
        loss = build_loss("test_margin_ce", [10, 1], margin=0.3)
        assert torch.isfinite(loss(torch.zeros(2, 2), torch.tensor([0, 1])))
        with pytest.raises(ValueError, match="taken"):
            register_loss("test_margin_ce")(type("Other", (ClassCountLoss,), {}))

        @register_loss("test_needs_margin")
        class NeedsMargin(MarginCE):
            def __init__(self, class_counts, margin: float, weight=None):
                super().__init__(class_counts, margin, weight)

        with pytest.raises(ConfigError, match="loss.margin: required"):     # before any training, not a TypeError
            validate_config({**raw, "loss": {"name": "test_needs_margin"}})
    finally:
        LOSSES.pop("test_margin_ce")
        LOSSES.pop("test_needs_margin", None)
