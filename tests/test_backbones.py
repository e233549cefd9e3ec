"""Tests of ltml.backbones: a ResNet, or any backbone, split into a trunk and a two-branch head.

The reference is the unsplit model: in eval mode, ``branch(trunk(x))`` must equal the input of
the model's own classifier (captured with a forward hook), bit for bit.
"""

import math

import pytest
import torch
from torch import Tensor, nn
from torchvision import models

import ltml
from ltml import split_dual_branch


def _classifier_input(model: nn.Module, classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = classifier.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


# (constructor, where the branch starts, its classifier, input size, feature width)
TORCHVISION = {
    "resnet18": (models.resnet18, "layer4", "fc", 64, 512),
    "convnext_tiny": (models.convnext_tiny, "features.7", "classifier.2", 64, 768),
    "efficientnet_b0": (models.efficientnet_b0, "features.7", "classifier.1", 64, 1280),
    "swin_t": (models.swin_t, "features.7", "head", 64, 768),
    "vit_b_16": (models.vit_b_16, "encoder.layers.encoder_layer_11", "heads.head", 224, 768),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_trunk_and_branch_reproduce_the_models_features(name):
    ctor, at, classifier, size, width = TORCHVISION[name]
    torch.manual_seed(0)
    model = ctor(weights=None).eval()
    x = torch.randn(2, 3, size, size)
    expected = _classifier_input(model, model.get_submodule(classifier), x)

    trunk, head = split_dual_branch(model, at, num_classes=7)
    head.eval()
    with torch.no_grad():
        feat = trunk(x)
        for branch in (head.branch_u, head.branch_r):
            assert torch.equal(branch.features(feat), expected)
        logits = head.predict(feat)
    assert head.branch_u.classifier.in_features == width == expected.shape[1]
    assert logits.shape == (2, 7)


def test_trunk_shares_the_models_modules_and_branches_are_independent_copies():
    model = models.resnet18(weights=None)
    trunk, head = split_dual_branch(model, "layer4", num_classes=3)
    assert trunk.get_submodule("layer3.0.conv1") is model.layer3[0].conv1  # shared, not copied
    params_u = dict(head.branch_u.named_parameters())
    for name, p in head.branch_r.named_parameters():
        assert p.data_ptr() != params_u[name].data_ptr()
        assert torch.equal(p, params_u[name])
    model_params = {p.data_ptr() for p in model.layer4.parameters()}
    assert not model_params & {p.data_ptr() for p in head.parameters()}
    assert "fc" not in dict(head.named_modules())  # the model's classifier is left out


def test_training_step_reaches_trunk_and_both_branches():
    torch.manual_seed(0)
    trunk, head = split_dual_branch(models.resnet18(weights=None), "layer4", num_classes=4)
    x_u, x_r = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out = head(*ltml.paired_forward(trunk, x_u, x_r))
    sum(t.sum() for t in out).backward()
    for module in (trunk, head.branch_u, head.branch_r):
        assert all(p.grad is not None for p in module.parameters())


# --- resnet_dual_branch --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "channels", "features"), [(models.resnet18, 256, 512), (models.resnet50, 1024, 2048)]
)
def test_resnet_split_on_torchvision_resnets(build, channels, features):
    torch.manual_seed(0)
    resnet = build(weights=None)
    trunk, head = ltml.resnet_dual_branch(resnet, 5)
    assert list(dict(trunk.named_children())) == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"
    ]  # fmt: skip
    assert trunk.layer3 is resnet.layer3  # the trunk reuses the modules, no copy
    assert head.in_channels == channels
    assert head.branch_u.classifier.in_features == features
    assert head.branch_r.classifier.out_features == 5
    assert head.concat  # one call over both batches unless asked otherwise
    assert not ltml.resnet_dual_branch(resnet, 5, concat=False)[1].concat
    resnet.eval(), trunk.eval(), head.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feat = trunk(x)
        # oracle: the original network up to its pooled features, then branch U's classifier
        pooled = torch.flatten(resnet.avgpool(resnet.layer4(feat)), 1)
        torch.testing.assert_close(head.predict(feat, mode="u"), head.branch_u.classifier(pooled))
        assert feat.shape[1] == channels
        assert head.predict(feat).shape == (2, 5)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (nn.Linear(2, 2), r"`resnet` must be a torchvision.models.ResNet.*got Linear"),
        (None, r"`resnet` must be a torchvision.models.ResNet.*got NoneType"),
    ],
)
def test_resnet_split_rejects_non_resnet(model, match):
    with pytest.raises(TypeError, match=match):
        ltml.resnet_dual_branch(model, 5)


def test_resnet_split_rejects_replaced_fc():
    resnet = models.resnet18(weights=None)
    resnet.fc = nn.Identity()
    with pytest.raises(ValueError, match=r"`resnet.fc` must be the nn.Linear.*got Identity"):
        ltml.resnet_dual_branch(resnet, 5)


def test_resnet_split_keeps_its_old_home_in_heads():
    from ltml.heads import resnet_dual_branch

    assert resnet_dual_branch is ltml.heads.resnet_dual_branch is ltml.backbones.resnet_dual_branch
    assert ltml.resnet_dual_branch is ltml.backbones.resnet_dual_branch
    assert "resnet_dual_branch" in ltml.heads.__all__
    with pytest.raises(AttributeError, match=r"module 'ltml.heads' has no attribute 'nope'"):
        ltml.heads.nope  # noqa: B018


def test_same_result_as_resnet_dual_branch():
    torch.manual_seed(0)
    model = models.resnet18(weights=None).eval()
    trunk_a, head_a = ltml.resnet_dual_branch(model, num_classes=5)
    trunk_b, head_b = split_dual_branch(model, "layer4", num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = head_a.branch_u.features(trunk_a(x)).mean(dim=(2, 3))
        b = head_b.branch_u.features(trunk_b(x))
    assert torch.equal(a, b)


# --- split_dual_branch ---------------------------------------------------------------------------


def test_model_without_classifier_measures_width_with_a_dry_run():
    model = models.resnet18(weights=None)
    model.fc = nn.Identity()
    trunk, head = split_dual_branch(
        model, "layer4", num_classes=2, example_input=torch.zeros(1, 3, 32, 32)
    )
    assert head.branch_u.classifier.in_features == 512
    # the dry run leaves the modes as they were
    assert model.training
    assert trunk.training


def test_unknown_module_name_lists_the_available_ones():
    with pytest.raises(
        ValueError, match=r"`at` must name a module of `model`, got 'layer5'.*'layer4'"
    ):
        split_dual_branch(models.resnet18(weights=None), "layer5", num_classes=2)


def test_module_called_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Conv2d(3, 3, 1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.block(self.block(x)).mean(dim=(2, 3)))

    with pytest.raises(ValueError, match="called 2 times"):
        split_dual_branch(Twice(), "block", num_classes=2)


def test_skip_connection_over_the_cut_is_refused():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 1)
            self.block = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            h = self.stem(x)
            return self.fc((self.block(torch.relu(h)) + h).mean(dim=(2, 3)))

    with pytest.raises(
        ValueError, match=r"also needs the trunk's intermediate result\(s\) \['stem'\]"
    ):
        split_dual_branch(Skip(), "block", num_classes=2)


def test_untraceable_model_is_a_clear_type_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                x = -x
            return self.fc(self.block(x))

    with pytest.raises(TypeError, match=r"`model` \(Branchy\) does not trace with torch.fx"):
        split_dual_branch(Branchy(), "block", num_classes=2)


def test_not_a_module():
    with pytest.raises(TypeError, match=r"`model` must be an nn\.Module, got str"):
        split_dual_branch("resnet", "layer4", num_classes=2)


@pytest.mark.parametrize(("name", "at"), [("resnet18", "layer4"), ("tresnet_m", "body.layer4")])
def test_timm_model(name, at):
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install timm)")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    expected = _classifier_input(model, model.get_classifier(), x)
    trunk, head = split_dual_branch(model, at, num_classes=3)
    with torch.no_grad():
        assert torch.equal(head.eval().branch_u.features(trunk(x)), expected)


# ------------------------------------------------------------- branches ending in attention heads


def _tiny_vit() -> nn.Module:
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()


def _tiny_swin() -> nn.Module:
    from torchvision.models import SwinTransformer

    torch.manual_seed(0)
    return SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2]
    ).eval()


def test_vit_branch_ends_in_csra_on_the_tokens_without_the_class_token():
    from ltml import CSRA

    model = _tiny_vit()
    csra = CSRA(16, 5, temperatures=(1.0, math.inf), num_prefix_tokens=1)
    trunk, head = split_dual_branch(
        model, "encoder.layers.encoder_layer_1", 5, end="encoder.ln", classifier=csra
    )
    x = torch.randn(2, 3, 32, 32)
    tokens = _output_of(model, model.encoder.ln, x)  # (2, 1 + 16, 16), the class token first
    assert tokens.shape == (2, 17, 16)
    torch.testing.assert_close(head.branch_u.features(trunk(x)), tokens)
    torch.testing.assert_close(head.predict(trunk(x), mode="u"), csra(tokens))
    out = head(trunk(x), trunk(x))
    assert out.u.shape == (2, 5)
    assert torch.equal(out.u, out.u_hat)
    assert head.branch_u.classifier is not csra
    assert head.branch_r.classifier is not csra


def _output_of(model: nn.Module, module: nn.Module, x: Tensor) -> Tensor:
    seen = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


def test_swin_branch_ends_in_ml_decoder_on_the_normalised_map():
    from ltml import MLDecoder

    model = _tiny_swin()
    decoder = MLDecoder(16, 5, num_groups=2, embed_dim=8, num_heads=2, dim_feedforward=16)
    trunk, head = split_dual_branch(model, "features.3", 5, end="permute", classifier=decoder)
    x = torch.randn(2, 3, 32, 32)
    feature_map = _output_of(model, model.permute, x)
    assert feature_map.shape == (2, 16, 4, 4)
    torch.testing.assert_close(head.branch_u.features(trunk(x)), feature_map)
    head.eval()  # the decoder drops out in training
    torch.testing.assert_close(head.predict(trunk(x), mode="r"), decoder.eval()(feature_map))


def test_resnet_branch_ending_at_layer4_equals_resnet_dual_branch():
    from ltml import CSRA

    csra = CSRA(512, 5)
    resnet = models.resnet18().eval()
    _, by_name = split_dual_branch(resnet, "layer4", 5, end="layer4", classifier=csra)
    _, by_resnet = ltml.resnet_dual_branch(resnet, 5, classifier=csra)
    feat = torch.randn(2, 256, 4, 4)
    for m in (by_name, by_resnet):
        m.eval()
    torch.testing.assert_close(by_name.predict(feat), by_resnet.predict(feat))
    assert by_resnet.branch_u.classifier.weight.shape == (1, 5, 512)


def test_an_end_needs_neither_a_width_nor_a_dry_run():
    from ltml import CSRA

    class Wrapped(nn.Module):  # no in_features attribute
        def __init__(self) -> None:
            super().__init__()
            self.inner = CSRA(512, 5)

        def forward(self, x: Tensor) -> Tensor:
            return self.inner(x)

    model = models.resnet18().eval()
    calls = []
    model.conv1.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
    _, head = split_dual_branch(model, "layer4", 5, end="layer4", classifier=Wrapped())
    assert calls == []  # the classifier replaces the linear one: no width to measure
    assert head.predict(torch.randn(2, 256, 4, 4)).shape == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"end": "layer4"}, r"`end` must come with a `classifier`"),
        ({"end": "nothing", "classifier": nn.Identity()}, r"`end` must name a module of `model`"),
        ({"end": "layer3", "classifier": nn.Identity()}, r"`end` must name a module that"),
        ({"end": "layer4.1", "classifier": nn.Identity()}, r"`end` must name a module that"),
        ({"classifier": "csra"}, r"`classifier` must be an nn.Module or None"),
    ],
)
def test_bad_end_or_classifier_is_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        split_dual_branch(models.resnet18(), "layer4", 5, **kwargs)


# --- the dry run, the search for the features, the cut ------------------------------------------


def _flattening_model() -> nn.Module:
    """No classifier, no pooling: the feature width depends on the image size (2 x 28 x 28)."""
    return nn.Sequential(nn.Conv2d(3, 2, 8, stride=8), nn.ReLU(), nn.Flatten())


def test_the_default_dry_run_is_one_224_by_224_image():
    model = _flattening_model()
    shapes = []
    model[0].register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    _, head = split_dual_branch(model, "1", num_classes=3)
    assert shapes == [(1, 3, 224, 224)]
    assert head.branch_u.classifier.in_features == 2 * 28 * 28


@pytest.mark.parametrize(
    ("example_input", "what"),
    [(None, "the default 1 x 3 x 224 x 224 zeros"), (torch.zeros(1, 3, 16, 16), "it")],
)
def test_a_failed_dry_run_says_which_input_failed(example_input, what):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())  # wants 1 channel
    with pytest.raises(ValueError, match=rf"but the model failed on {what}: "):
        split_dual_branch(model, "1", num_classes=3, example_input=example_input)


def test_unpooled_features_without_a_classifier_are_refused():
    model = nn.Sequential(nn.Conv2d(3, 2, 8, stride=8), nn.ReLU())
    with pytest.raises(
        ValueError, match=r"end with pooled \(N, D\) features .*, got \(1, 2, 28, 28\)$"
    ):
        split_dual_branch(model, "1", num_classes=3)


def test_features_that_are_not_a_tensor_are_refused():
    class Halves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(4, 4)

        def forward(self, x: Tensor) -> tuple[Tensor, ...]:
            return self.block(x).chunk(2, dim=1)

    with pytest.raises(ValueError, match=r"nn\.Linear classifier, got tuple$"):
        split_dual_branch(Halves(), "block", num_classes=3, example_input=torch.zeros(1, 4))


@pytest.mark.parametrize(("count", "tail"), [(40, ""), (41, ", ...")])
def test_the_module_names_in_an_error_stop_at_forty(count, tail):
    model = nn.Sequential(*(nn.Identity() for _ in range(count)))
    listed = ", ".join(repr(str(i)) for i in range(40)) + tail
    with pytest.raises(ValueError, match="its modules include") as error:
        split_dual_branch(model, "nothing", num_classes=3)
    expected = f"`at` must name a module of `model`, got 'nothing'; its modules include {listed}"
    assert str(error.value) == expected


def test_the_module_names_in_an_error_are_the_first_two_levels():
    with pytest.raises(ValueError, match=r"^`at` must name a module of `model`, got None; its"):
        split_dual_branch(models.resnet18(), None, num_classes=3)
    with pytest.raises(ValueError, match=r"'layer4\.1'(?!\.)") as error:
        split_dual_branch(models.resnet18(), "layer5", num_classes=3)
    assert "'layer4.1.conv1'" not in str(error.value)


def test_the_head_concatenates_by_default_and_names_its_parts():
    trunk, head = split_dual_branch(models.resnet18(), "layer4", num_classes=3)
    assert head.concat is True
    assert split_dual_branch(models.resnet18(), "layer4", 3, concat=False)[1].concat is False
    assert type(trunk).__name__ == "Trunk"
    feat = torch.randn(2, 256, 2, 2)
    branch = head.branch_u.features.eval()
    torch.testing.assert_close(branch(x=feat), branch(feat))


def test_a_module_called_on_two_tensors_is_refused():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Bilinear(3, 3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.block(x, x.flip(1)))

    with pytest.raises(ValueError, match=r"`at` must name a module called on one tensor"):
        split_dual_branch(Pair(), "block", num_classes=2)


def test_a_parameter_used_on_both_sides_of_the_cut_is_shared_not_leaked():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.full((3,), 2.0))
            self.stem = nn.Linear(3, 3)
            self.block = nn.Linear(3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.block(self.stem(x * self.scale)) * self.scale)

    model = Scaled().eval()
    trunk, head = split_dual_branch(model, "block", num_classes=2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(
        head.branch_u.features(trunk(x)), _classifier_input(model, model.fc, x)
    )


def test_a_second_input_of_the_model_after_the_cut_is_refused():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor, shift: float = 0.0) -> Tensor:
            return self.fc(self.block(x) + shift)

    with pytest.raises(ValueError, match=r"intermediate result\(s\) \['shift'\]"):
        split_dual_branch(TwoInputs(), "block", num_classes=2)


def test_a_module_after_the_classifier_that_changes_its_output_stays_in_the_branch():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5), nn.Sigmoid()).eval()
    trunk, head = split_dual_branch(model, "1", num_classes=2, example_input=torch.zeros(1, 3))
    assert head.branch_u.classifier.in_features == 5  # the sigmoid's output, not the Linear's input
    x = torch.randn(2, 3)
    torch.testing.assert_close(head.branch_u.features(trunk(x)), model(x))
