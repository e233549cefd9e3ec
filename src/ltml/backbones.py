"""Any backbone as a shared trunk and a :class:`~ltml.DualBranchHead`.

:func:`resnet_dual_branch` splits a torchvision ResNet as Guo & Wang (CVPR 2021) do: the trunk is
the stem to ``layer3``, and the head holds two copies of ``layer4``.

:func:`split_dual_branch`, for any backbone, cuts a model at a named module: everything the model
computes before that module becomes the trunk, and the module with everything after it up to the
model's classifier (its own pooling included: global average pooling, a class token, Swin's
channels-last norm and pooling) becomes the branch that the head copies twice. The cut is made
on the model's ``torch.fx`` graph, so it works for models whose ``forward`` is more than a chain
of modules (ViT's class token and position embedding, Swin's permutes).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, fx, nn

from ._validation import check_bool, check_int, check_tensor
from .heads import DualBranchHead

__all__ = ["resnet_dual_branch", "split_dual_branch"]


def resnet_dual_branch(
    resnet: nn.Module, num_classes: int, *, concat: bool = True, classifier: nn.Module | None = None
) -> tuple[nn.Sequential, DualBranchHead]:
    """Split a torchvision ResNet into a shared trunk and a :class:`DualBranchHead`.

    As in Guo & Wang (CVPR 2021, Fig. 2): the trunk is the stem and ``layer1`` to ``layer3``;
    each branch is its own copy of ``layer4`` (same initial weights, no shared parameters), global
    average pooling and a new linear classifier (both classifiers start identical, see
    :class:`DualBranchHead`). ``resnet.fc`` is not used.

    Parameters
    ----------
    resnet : torchvision.models.ResNet
        Any torchvision ResNet / ResNeXt / Wide ResNet, with the weights of your choice, e.g.
        ``resnet50(weights=ResNet50_Weights.IMAGENET1K_V1)`` for the published numbers.
    num_classes : int
        Number of classes ``C``.
    concat : bool
        Passed to :class:`DualBranchHead`.
    classifier : nn.Module, optional
        Passed to :class:`DualBranchHead`: a head on ``layer4``'s ``(N, D, H, W)`` map in place
        of pooling and a linear classifier, e.g. ``CSRA(2048, num_classes)``.

    Returns
    -------
    trunk : nn.Sequential
        ``conv1, bn1, relu, maxpool, layer1, layer2, layer3``: the modules of ``resnet`` itself,
        not copies. Run it once over both batches with :func:`~ltml.paired_forward`.
    head : DualBranchHead
        Two copies of ``layer4`` with their classifiers (``in_features = resnet.fc.in_features``).

    Examples
    --------
    >>> import torch
    >>> from torchvision.models import resnet18
    >>> from ltml import paired_forward, resnet_dual_branch
    >>> trunk, head = resnet_dual_branch(resnet18(weights=None), num_classes=20)
    >>> x_u, x_r = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    >>> out = head(*paired_forward(trunk, x_u, x_r))  # training: u, u_hat, r, r_hat
    >>> out.u.shape
    torch.Size([2, 20])
    >>> head.eval().predict(trunk.eval()(x_u)).shape  # inference: the two branches averaged
    torch.Size([2, 20])
    """
    from torchvision.models import ResNet  # torchvision imports slowly: only when needed

    if not isinstance(resnet, ResNet):
        raise TypeError(
            "`resnet` must be a torchvision.models.ResNet (e.g. torchvision.models.resnet50()), "
            f"got {type(resnet).__name__}"
        )
    if not isinstance(resnet.fc, nn.Linear):
        raise ValueError(
            "`resnet.fc` must be the nn.Linear classifier (it gives in_features), "
            f"got {type(resnet.fc).__name__}"
        )
    trunk = nn.Sequential(
        OrderedDict(
            (name, getattr(resnet, name))
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3")
        )
    )
    head = DualBranchHead(
        resnet.layer4,
        resnet.fc.in_features,
        num_classes,
        in_channels=resnet.layer4[0].conv1.in_channels,
        concat=concat,
        classifier=classifier,
    )
    return trunk, head


# Modules that may follow the classifier without changing what it computes.
_PASS_THROUGH = (nn.Identity, nn.Flatten, nn.Dropout)


class _CutTracer(fx.Tracer):
    """A tracer that keeps the modules at the cuts as one call each, so the graph has nodes."""

    def __init__(self, *cuts: str | None) -> None:
        super().__init__()
        self.cuts = cuts

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self.cuts or super().is_leaf_module(
            m, module_qualified_name
        )


def _ancestors(node: fx.Node) -> set[fx.Node]:
    """``node`` and every node it depends on."""
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def _subgraph(
    nodes: list[fx.Node], output: fx.Node, inputs: dict[fx.Node, str] | None = None
) -> fx.Graph:
    """Copy ``nodes`` (in graph order) into a new graph returning ``output``.

    Nodes in ``inputs`` become placeholders of the given names.
    """
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node, name in (inputs or {}).items():
        env[node] = graph.placeholder(name)
    for node in nodes:
        if node not in env:
            env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[output])
    return graph


def _depends_on_input(node: fx.Node) -> bool:
    return any(n.op == "placeholder" for n in _ancestors(node))


def _check_module_name(model: nn.Module, name: object, argument: str) -> None:
    """Check that ``name`` is the qualified name of a submodule; list some names if not."""
    names = [n for n, _ in model.named_modules() if n]
    if not isinstance(name, str) or name not in names:
        # the first two levels of the module tree, at most 40 names: enough to find the way
        shown = [repr(n) for n in names if n.count(".") < 2]
        listed = ", ".join(shown[:40]) + (", ..." if len(shown) > 40 else "")
        raise ValueError(
            f"`{argument}` must name a module of `model`, got {name!r}; its modules include "
            f"{listed}"
        )


def split_dual_branch(
    model: nn.Module,
    at: str,
    num_classes: int,
    *,
    example_input: Tensor | None = None,
    concat: bool = True,
    end: str | None = None,
    classifier: nn.Module | None = None,
) -> tuple[fx.GraphModule, DualBranchHead]:
    """Split any backbone at the module ``at`` into a shared trunk and a two-branch head.

    The trunk computes everything ``model`` computes before ``at`` (its output is the input of
    ``at``). The branch is ``at`` and everything after it up to the model's final linear
    classifier, which is left out: the branch ends with the model's own pooled features, so
    ``branch(trunk(x))`` equals the input of the model's classifier exactly. The head holds two
    copies of the branch, each with a new linear classifier (see :class:`DualBranchHead`).

    Parameters
    ----------
    model : nn.Module
        A classification model whose ``forward`` traces with ``torch.fx`` (every torchvision
        classifier does: ResNet, ConvNeXt, EfficientNet, RegNet, Swin, ViT, ...; so do most timm
        models). Its output must be its final ``nn.Linear`` classifier's, or already the pooled
        features (a timm model with ``num_classes=0``). Weights are the caller's choice.
    at : str
        Qualified name of the module where the branch starts, as in ``model.named_modules()``:
        ``"layer4"`` (ResNet), ``"features.7"`` (ConvNeXt, Swin, EfficientNet-B0),
        ``"encoder.layers.encoder_layer_11"`` (ViT-B/16), ``"stages.3"`` (timm). The module must
        run once, on one tensor, in ``model.forward``.
    num_classes : int
        Number of classes ``C`` of the new classifiers.
    example_input : Tensor, optional
        A batch for a dry run that measures the feature width when the model has no final
        linear classifier (and no ``end`` is given); default ``torch.zeros(1, 3, 224, 224)``.
        Unused otherwise.
    concat : bool
        Passed to :class:`DualBranchHead`.
    end : str, optional
        Qualified name of a module (``at`` or one after it) whose output ends the branch, in
        place of the model's pooled features: for a head that reads spatial features, e.g.
        ``"layer4"`` (ResNet, ConvNeXt ``"features.7"``: ``(N, D, H, W)``), ``"permute"`` (Swin:
        the normalised map, channels first), ``"encoder.ln"`` (ViT: ``(N, 1 + L, D)`` tokens, the
        class token first). Needs ``classifier``.
    classifier : nn.Module, optional
        Passed to :class:`DualBranchHead`, e.g. ``CSRA(768, num_classes, num_prefix_tokens=1)``
        after a ViT's ``"encoder.ln"``.

    Returns
    -------
    trunk : torch.fx.GraphModule
        ``(N, 3, H, W)`` images to the input of ``at``; it shares its modules with ``model``.
    head : DualBranchHead
        Two copies of the branch, ``in_features`` taken from the model's classifier (or the dry
        run).

    Raises
    ------
    ValueError
        ``at`` is not a module of ``model`` (the message lists the names of its modules), is not
        called exactly once, or the part after it needs an intermediate result of the trunk
        other than the input of ``at``.
    TypeError
        ``model`` is not an ``nn.Module`` or does not trace with ``torch.fx``.

    Examples
    --------
    >>> import torch
    >>> from torchvision.models import convnext_tiny
    >>> from ltml import paired_forward, split_dual_branch
    >>> model = convnext_tiny(weights=None).eval()
    >>> trunk, head = split_dual_branch(model, "features.7", num_classes=20)
    >>> head.branch_u.classifier
    Linear(in_features=768, out_features=20, bias=True)
    >>> x = torch.randn(2, 3, 64, 64)
    >>> out = head(*paired_forward(trunk, x, x))  # training: u, u_hat, r, r_hat
    >>> out.u.shape
    torch.Size([2, 20])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    check_int(num_classes, "num_classes")
    check_bool(concat, "concat")
    if example_input is not None:
        check_tensor(example_input, "example_input")
    if classifier is not None and not isinstance(classifier, nn.Module):
        raise TypeError(
            f"`classifier` must be an nn.Module or None, got {type(classifier).__name__}"
        )
    _check_module_name(model, at, "at")
    if end is not None:
        _check_module_name(model, end, "end")
    if end is not None and classifier is None:
        raise ValueError(
            "`end` must come with a `classifier` that reads its unpooled output (e.g. CSRA), "
            f"got end={end!r} and classifier=None"
        )
    try:
        graph = _CutTracer(at, end).trace(model)
    except Exception as error:  # fx raises many kinds (TraceError, TypeError, ...)
        raise TypeError(
            f"`model` ({type(model).__name__}) does not trace with torch.fx ({error}); build the "
            "trunk and a DualBranchHead by hand instead (see DualBranchHead)"
        ) from error

    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == at]
    if len(calls) != 1:
        raise ValueError(
            f"`at` must name a module that `model.forward` calls once, got {at!r}, "
            f"called {len(calls)} times"
        )
    cut = calls[0]
    if len(cut.all_input_nodes) != 1 or cut.kwargs:
        raise ValueError(f"`at` must name a module called on one tensor, got {at!r}")
    cut_input = cut.all_input_nodes[0]

    if end is None:
        features, in_features = _features_node(model, nodes)
    else:
        ends = [n for n in nodes if n.op == "call_module" and n.target == end]
        if len(ends) != 1 or cut not in _ancestors(ends[0]):
            raise ValueError(
                f"`end` must name a module that `model.forward` calls once, on a result of "
                f"`at`={at!r} (or `at` itself), got {end!r}"
            )
        features, in_features = ends[0], None  # the classifier replaces the linear one
    needed = _ancestors(features)
    if cut not in needed:
        raise ValueError(f"`at` must name a module that the model's output depends on, got {at!r}")
    trunk_nodes = _ancestors(cut_input)
    # The branch recomputes what depends on no input (parameters, constants); anything else it
    # needs from before the cut (a skip connection over it) cannot pass through one tensor.
    branch_nodes = {
        n
        for n in needed
        if n.op != "placeholder" and (n not in trunk_nodes or not _depends_on_input(n))
    }
    leaked = {
        m.name
        for n in branch_nodes
        for m in n.all_input_nodes
        if m not in branch_nodes and m is not cut_input
    }
    if leaked:
        raise ValueError(
            f"`at`={at!r} cannot split `model`: the part after it also needs the trunk's "
            f"intermediate result(s) {sorted(leaked)}; choose a later module"
        )
    trunk_graph = _subgraph([n for n in nodes if n in trunk_nodes], cut_input)
    branch_graph = _subgraph(
        [n for n in nodes if n in branch_nodes], features, inputs={cut_input: "x"}
    )
    trunk = fx.GraphModule(model, trunk_graph, class_name="Trunk")
    branch = fx.GraphModule(model, branch_graph)  # the head keeps copies of it
    if end is None and in_features is None:
        in_features = _dry_run_width(trunk, branch, example_input)
    head = DualBranchHead(branch, in_features, num_classes, concat=concat, classifier=classifier)
    return trunk, head


def _features_node(model: nn.Module, nodes: list[fx.Node]) -> tuple[fx.Node, int | None]:
    """Find the node of the model's pooled features, and their width if a classifier gives it."""
    (result,) = (n for n in nodes if n.op == "output")
    out = result.args[0]
    if not isinstance(out, fx.Node):
        raise ValueError(f"`model` must return one tensor, got {type(out).__name__} from its graph")
    head = out
    while head.op == "call_module":
        module = model.get_submodule(str(head.target))
        if isinstance(module, nn.Linear):
            (features,) = head.all_input_nodes
            return features, module.in_features
        if not isinstance(module, _PASS_THROUGH) or len(head.all_input_nodes) != 1:
            break
        (head,) = head.all_input_nodes  # e.g. timm's classifier head: Linear, then Identity
    return out, None


def _dry_run_width(trunk: nn.Module, branch: nn.Module, example_input: Tensor | None) -> int:
    x = torch.zeros(1, 3, 224, 224) if example_input is None else example_input
    # Each module's own mode is restored: ``train(mode)`` would set every submodule to the
    # top-level mode (e.g. BatchNorm layers frozen in eval would come back in train mode).
    modes = [(m, m.training) for part in (trunk, branch) for m in part.modules()]
    trunk.eval(), branch.eval()
    try:
        with torch.no_grad():
            z = branch(trunk(x))
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        what = "the default 1 x 3 x 224 x 224 zeros" if example_input is None else "it"
        raise ValueError(
            f"`example_input` must be a batch the model runs on (a dry run measures its "
            f"feature width), but the model failed on {what}: {error}"
        ) from error
    finally:
        for module, mode in modes:
            module.training = mode
    if not isinstance(z, Tensor) or z.ndim != 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(
            f"`model` must end with pooled (N, D) features or an nn.Linear classifier, got {shape}"
        )
    return int(z.shape[1])
