"""Signatures: finding one in a loaded model and checking a request against it.

Contract: pure functions over ``SignatureDef`` protos and numpy arrays, shared by Predict,
Classify, Regress and MultiInference. Errors are TF Serving's: an unknown signature is
FAILED_PRECONDITION ``Serving signature key "NAME" not found.``; inputs sent that the
signature does not take, or inputs it needs but were not sent, are INVALID_ARGUMENT listing
both; a wrong dtype is INVALID_ARGUMENT naming the input, what was expected and what came,
before the model runs; a shape outside the signature's is blamed the same way only if the
model then fails on it (TF Serving feeds whatever the graph accepts); an unknown or repeated
output_filter alias is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, FailedPrecondition, InvalidArgument
from edgeseg.model_contract import SERVING_DEFAULT
from edgeseg.serving.tensors import (
    array_dtype_name,
    dtype_name,
    format_shape,
    numpy_dtype,
    shape_of,
)

DEFAULT_SIGNATURE = SERVING_DEFAULT  # TF Serving's kDefaultServingSignatureDefKey
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def find_signature(signature_defs: Mapping[str, Any], name: str) -> tuple[str, Any]:
    """(resolved name, SignatureDef); an empty name means serving_default."""
    name = name or DEFAULT_SIGNATURE
    if name not in signature_defs:
        raise FailedPrecondition(f'Serving signature key "{name}" not found.')
    return name, signature_defs[name]


def _braces(names: Sequence[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def check_input_names(signature: Any, sent: Sequence[str]) -> None:
    expected = set(signature.inputs)
    if set(sent) == expected:
        return
    extra = set(sent) - expected
    missing = expected - set(sent)
    raise InvalidArgument(
        f"input size does not match signature: {len(sent)}!={len(expected)} "
        f"len({_braces(sent)}) != len({_braces(list(expected))}). "
        f"Sent extra: {_braces(list(extra))}. Missing but required: {_braces(list(missing))}."
    )


def check_dtype(alias: str, info: Any, value: np.ndarray) -> None:
    """An input's dtype must be the signature's: TensorFlow refuses any other feed."""
    want = numpy_dtype(info.dtype)
    if want is not None and value.dtype != np.dtype(want):
        raise InvalidArgument(
            f"input '{alias}': expected dtype {dtype_name(info.dtype)}, "
            f"got {array_dtype_name(value)}"
        )


def shape_problem(alias: str, info: Any, value: np.ndarray) -> str | None:
    """How an input's shape differs from the signature's known dimensions, or None."""
    # Old exports leave tensor_shape out altogether: the shape is unknown, not scalar.
    shape = shape_of(info.tensor_shape) if info.HasField("tensor_shape") else None
    if shape is None:
        return None
    ok = len(shape) == value.ndim and all(
        e < 0 or e == g for e, g in zip(shape, value.shape, strict=True)
    )
    if ok:
        return None
    return (f"input '{alias}': expected shape {format_shape(shape)}, "
            f"got {format_shape(list(value.shape))}")


def check_inputs(signature: Any, inputs: Mapping[str, np.ndarray]) -> None:
    """Names and dtypes, before running. Shapes are NOT refused here: TF Serving feeds
    what the graph accepts (half_plus_two's [-1,1] signature takes x of shape [3]), so a
    shape is only blamed when the run fails (see :func:`explain_failure`)."""
    check_input_names(signature, list(inputs))
    for alias, value in inputs.items():
        check_dtype(alias, signature.inputs[alias], value)


def explain_failure(signature: Any, inputs: Mapping[str, np.ndarray],
                    error: EdgesegError) -> EdgesegError:
    """A failed run whose inputs broke the signature's shapes: INVALID_ARGUMENT naming them."""
    problems = [p for alias, value in inputs.items()
                if (p := shape_problem(alias, signature.inputs[alias], value))]
    if not problems:
        return error
    return InvalidArgument(f"{'; '.join(problems)} ({error.message})")


def select_outputs(signature: Any, output_filter: Sequence[str]) -> list[str]:
    """The output aliases to fetch: all (sorted) when the filter is empty."""
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {_braces(list(signature.outputs))}."
            )
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def check_method(signature_name: str, signature: Any, method: str, enabled: bool) -> None:
    """With --enable_signature_method_name_check, Classify/Regress need their method_name."""
    if enabled and signature.method_name != method:
        kind = "classification" if method == CLASSIFY_METHOD else "regression"
        raise InvalidArgument(
            f"Expected {kind} signature method_name to be {method}. "
            f"Was: {signature.method_name} (signature {signature_name})"
        )
