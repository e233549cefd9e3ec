"""Input contracts shared by every part of ltml: one check per kind of argument, one wording each.

Every public entry point checks its arguments with these functions, so that a bad argument gives
the same error wherever it is passed: a ``TypeError`` for a value of the wrong kind (a string
for a number, a list where an array is needed), a ``ValueError`` for a value of the right kind
outside its domain, a ``FileNotFoundError`` for a missing file. Each message names the argument
(in backticks), says what was expected and what was seen. ``docs/inputs.md`` lists the contracts.
One module per kind of argument; every check is re-exported here, where ltml imports it from.

Kinds of argument: integers (counts, sizes, epochs, seeds), real numbers (hyper-parameters,
probabilities), choices among strings, flags, label matrices, score / logit matrices, per-class
vectors, per-class counts, class index lists and groups, image groups (patients), paths, the
spatial features of an attention head (maps or token sequences).
"""

from .arrays import (
    as_class_names,
    as_class_vector,
    as_counts,
    as_indices,
    as_labels,
    as_logits,
    as_scores,
    as_tensor,
    check_class_counts,
    check_finite,
    check_floating,
    check_groups,
    check_holds_unknown,
    check_labels,
    check_matrix,
    check_non_negative,
    check_same_rows,
    check_same_shape,
    check_shape,
    check_tensor,
    counts_tensor,
    finite_contract,
    labels_contract,
)
from .groups import as_image_groups
from .metric_inputs import (
    as_device_metric_inputs,
    as_metric_inputs,
    as_thresholds,
    check_probabilities,
    check_top_k,
)
from .paths import (
    as_path,
    assert_on_device,
    check_file,
    is_compiling,
    sync_free,
)
from .scalars import (
    REDUCTIONS,
    UNKNOWN_POLICIES,
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_probability,
    check_reduction,
    check_scalar,
    check_seed,
    check_unknown,
    described,
    is_real,
)
from .sparse import (
    as_positions,
    as_shape,
    check_csr,
    check_signed_dtype,
    check_sparse_labels,
    check_sparse_shape,
)
from .tokens import as_tokens

__all__ = [
    "REDUCTIONS",
    "UNKNOWN_POLICIES",
    "as_class_names",
    "as_class_vector",
    "as_counts",
    "as_device_metric_inputs",
    "as_image_groups",
    "as_indices",
    "as_labels",
    "as_logits",
    "as_metric_inputs",
    "as_path",
    "as_positions",
    "as_scores",
    "as_shape",
    "as_tensor",
    "as_thresholds",
    "as_tokens",
    "assert_on_device",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_class_counts",
    "check_csr",
    "check_file",
    "check_finite",
    "check_floating",
    "check_groups",
    "check_holds_unknown",
    "check_int",
    "check_labels",
    "check_matrix",
    "check_non_negative",
    "check_probabilities",
    "check_probability",
    "check_reduction",
    "check_same_rows",
    "check_same_shape",
    "check_scalar",
    "check_seed",
    "check_shape",
    "check_signed_dtype",
    "check_sparse_labels",
    "check_sparse_shape",
    "check_tensor",
    "check_top_k",
    "check_unknown",
    "counts_tensor",
    "described",
    "finite_contract",
    "is_compiling",
    "is_real",
    "labels_contract",
    "sync_free",
]
