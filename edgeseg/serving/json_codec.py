"""JSON <-> tensors for the REST API, as TF Serving's json_tensor.cc defines them.

Contract: pure functions, no I/O. :func:`predict_inputs` turns a parsed ``:predict`` body
into ``{input alias: ndarray}`` typed by the signature's inputs:

* row format ``{"instances": [...]}``: one element per example, stacked on a new batch
  dimension; each element is the single input's value, or (any number of inputs) an object
  ``{alias: value}``;
* columnar format ``{"inputs": value}`` or ``{"inputs": {alias: value}}``;
* values are (nested) lists of numbers, booleans, strings or ``{"b64": "..."}`` for bytes;
  ``NaN``/``Infinity`` are numbers (the parser accepts them).

Anything else is INVALID_ARGUMENT naming what and where: both or neither of
instances/inputs, unknown keys, ragged lists, a string for a number, bad base64, numbers
out of the dtype's range. :func:`predict_outputs` writes the answer: ``{"predictions": [...]}``
for the row format (one element per example; objects when there are several outputs),
``{"outputs": ...}`` for the columnar one. DT_STRING outputs whose alias ends in ``_bytes``
are written ``{"b64": ...}``, others as text.

``:classify``/``:regress`` bodies (:func:`examples_input`) are ``{"signature_name",
"context", "examples"}``: each feature is a value or a list of values; whole numbers make an
int64_list, any decimal a float_list, strings and ``{"b64": ...}`` a bytes_list. Answers
(:func:`classification_json`, :func:`regression_json`) are ``{"results": ...}``:
``[[label, score], ...]`` per example, or one value per example.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from edgeseg.errors import InvalidArgument
from edgeseg.serving.tensors import dtype_name, numpy_dtype
from edgeseg.wire.apis import input_pb2
from edgeseg.wire.framework import example_pb2, feature_pb2, types_pb2
from edgeseg.wire.schema import Message

PREDICT_KEYS = {"signature_name", "instances", "inputs"}


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _shape(value: Any, where: str) -> list[int]:
    """The rectangular shape of nested lists; INVALID_ARGUMENT if ragged."""
    if not isinstance(value, list):
        return []
    if not value:
        return [0]
    inner = _shape(value[0], where)
    for item in value[1:]:
        if _shape(item, where) != inner:
            raise InvalidArgument(f"{where}: lists of different lengths or depths (ragged)")
    return [len(value), *inner]


def _leaves(value: Any):  # a generator
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _leaf(value: Any, dtype: int, where: str) -> Any:
    if dtype == types_pb2.DT_STRING:
        if _is_b64(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise InvalidArgument(f"{where}: 'b64' is not valid base64") from None
        if isinstance(value, str):
            return value.encode()
        raise InvalidArgument(f"{where}: expected a string or {{\"b64\": ...}}, got "
                              f"{type(value).__name__}")
    if dtype == types_pb2.DT_BOOL:
        if isinstance(value, bool):
            return value
        raise InvalidArgument(f"{where}: expected true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{where}: expected a number for {dtype_name(dtype)}, got "
                              f"{json_type(value)}")
    if numpy_dtype(dtype) is not None and np.dtype(numpy_dtype(dtype)).kind in "iu":
        if not isinstance(value, int):
            raise InvalidArgument(f"{where}: expected an integer for {dtype_name(dtype)}, "
                                  f"got {value!r}")
        info = np.iinfo(numpy_dtype(dtype))
        if not info.min <= value <= info.max:
            raise InvalidArgument(f"{where}: {value} is out of range for {dtype_name(dtype)}")
    return value


def json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def to_array(value: Any, info: Any, where: str) -> np.ndarray:
    """One JSON value as an array of the signature input's dtype."""
    dtype = info.dtype
    np_type = numpy_dtype(dtype)
    if np_type is None:
        raise InvalidArgument(f"{where}: inputs of {dtype_name(dtype)} cannot be sent as JSON")
    fast = _numeric_fast_path(value, np_type)
    if fast is not None:
        return fast
    shape = _shape(value, where)
    flat = [_leaf(v, dtype, where) for v in _leaves(value)]
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    with np.errstate(over="raise"):
        try:
            return np.asarray(flat, dtype=np_type).reshape(shape)
        except (OverflowError, FloatingPointError):
            raise InvalidArgument(f"{where}: a number is out of range for "
                                  f"{dtype_name(dtype)}") from None


def _numeric_fast_path(value: Any, np_type: Any) -> np.ndarray | None:
    """Numbers only, rectangular, in range: numpy converts them in C (an image's 790k values
    in milliseconds, not seconds). Anything else (strings, booleans for numbers, decimals for
    integers, ragged lists, huge numbers) returns None, and the element-wise path below
    says precisely what is wrong."""
    target = np.dtype(np_type)
    if target.kind not in "iufb":
        return None
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        return None
    if target.kind == "b":
        return array if array.dtype.kind == "b" else None
    if array.dtype.kind not in ("iu" if target.kind in "iu" else "iuf") or array.size == 0:
        return None
    if bool in set(map(type, np.asarray(value, dtype=object).ravel())):
        return None  # numpy reads true as 1; JSON booleans are not numbers
    if target.kind in "iu":
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            return None
    elif target != array.dtype:
        finite = array[np.isfinite(array)]  # NaN and Infinity are fine as they are
        if finite.size and np.abs(finite).max() > np.finfo(target).max:
            return None
    return array.astype(target, copy=False)


def _named(value: Any, inputs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Split a value into {alias: value}: an object of aliases, or the one input's value."""
    if isinstance(value, dict) and not _is_b64(value):
        return value
    if len(inputs) != 1:
        raise InvalidArgument(
            f"{where}: the signature takes {len(inputs)} inputs ({', '.join(sorted(inputs))});"
            " give an object naming each"
        )
    return {next(iter(inputs)): value}


def predict_inputs(body: Any, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    """({alias: array}, row_format) from a :predict body, typed by the signature's inputs."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"the request body must be a JSON object, got {json_type(body)}")
    unknown = set(body) - PREDICT_KEYS
    if unknown:
        raise InvalidArgument(f"unknown key(s) {', '.join(sorted(unknown))}; expected "
                              "'instances' or 'inputs', and 'signature_name'")
    if ("instances" in body) == ("inputs" in body):
        raise InvalidArgument("give exactly one of 'instances' (row format) or 'inputs' "
                              "(columnar format)")
    if "inputs" in body:
        named = _named(body["inputs"], inputs, "inputs")
        return {a: to_array(v, _info(inputs, a, "inputs"), f"inputs[{a!r}]")
                for a, v in named.items()}, False
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidArgument("'instances' must be a non-empty list")
    rows = [_named(item, inputs, f"instances[{i}]") for i, item in enumerate(instances)]
    names = set(rows[0])
    for i, row in enumerate(rows):
        if set(row) != names:
            raise InvalidArgument(f"instances[{i}] names inputs {sorted(row)}, instances[0] "
                                  f"{sorted(names)}")
    return {a: to_array([row[a] for row in rows], _info(inputs, a, "instances"),
                        f"instances[*][{a!r}]") for a in names}, True


def _info(inputs: Mapping[str, Any], alias: str, where: str) -> Any:
    if alias not in inputs:
        raise InvalidArgument(f"{where}: the signature has no input {alias!r}; it takes "
                              f"{', '.join(sorted(inputs))}")
    return inputs[alias]


def to_json(array: np.ndarray, alias: str) -> Any:
    """An output array as JSON values (nested lists)."""
    if array.dtype == object or array.dtype.kind in "SU":
        as_b64 = alias.endswith("_bytes")
        return _map(array, lambda b: {"b64": base64.b64encode(b).decode()} if as_b64
                    else b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b))
    if array.dtype in (np.float32, np.float16):
        return _map(array, lambda v: float(str(v)))  # 0.1, not 0.10000000149011612
    return array.tolist()


def _map(value: Any, fn) -> Any:
    """fn on every element of a (nested) array, as nested lists."""
    if isinstance(value, np.ndarray):
        if value.ndim:
            return [_map(v, fn) for v in value]
        value = value[()]
    return fn(value)  # numpy scalars keep their type: float32 prints its own shortest text


def predict_outputs(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    if not row_format:
        if len(outputs) == 1:
            ((alias, value),) = outputs.items()
            return {"outputs": to_json(value, alias)}
        return {"outputs": {a: to_json(v, a) for a, v in outputs.items()}}
    batch = {a: (v.shape[0] if v.ndim else None) for a, v in outputs.items()}
    sizes = set(batch.values())
    if len(sizes) != 1 or None in sizes:
        raise InvalidArgument(f"outputs do not share one batch size for the row format: {batch};"
                              " use the columnar format ('inputs')")
    if len(outputs) == 1:
        ((alias, value),) = outputs.items()
        return {"predictions": to_json(value, alias)}
    batch_size = cast(int, sizes.pop())  # one size, not None: checked above
    rows = [{a: to_json(np.asarray(v[i], dtype=v.dtype), a) for a, v in outputs.items()}
            for i in range(batch_size)]
    return {"predictions": rows}


EXAMPLES_KEYS = {"signature_name", "context", "examples"}


def _feature(value: Any, where: str) -> Message:
    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        feature.bytes_list.value.extend(
            _leaf(v, types_pb2.DT_STRING, where) for v in values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if all(isinstance(v, int) for v in values):
            for v in values:
                _leaf(v, types_pb2.DT_INT64, where)
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    else:
        raise InvalidArgument(f"{where}: a feature is a number, a string, {{\"b64\": ...}} or a "
                              "list of one kind of these")
    return feature


def _example(features: Any, where: str) -> Message:
    if not isinstance(features, dict):
        raise InvalidArgument(f"{where}: expected an object of features, got "
                              f"{json_type(features)}")
    example = example_pb2.Example()
    for name, value in features.items():
        example.features.feature[name].CopyFrom(_feature(value, f"{where}[{name!r}]"))
    return example


def examples_input(body: Any) -> Message:
    """The tf.Example Input of a :classify or :regress body."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"the request body must be a JSON object, got {json_type(body)}")
    unknown = set(body) - EXAMPLES_KEYS
    if unknown:
        raise InvalidArgument(f"unknown key(s) {', '.join(sorted(unknown))}; expected "
                              "'examples', and optionally 'context' and 'signature_name'")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise InvalidArgument("'examples' must be a non-empty list of objects")
    request_input = input_pb2.Input()
    if "context" in body:
        with_context = request_input.example_list_with_context
        with_context.context.CopyFrom(_example(body["context"], "context"))
        shared = set(body["context"])
        for i, features in enumerate(examples):
            both = shared & set(features) if isinstance(features, dict) else set()
            if both:
                raise InvalidArgument(f"examples[{i}]: feature(s) {', '.join(sorted(both))} "
                                      "also in 'context'")
            with_context.examples.append(_example(features, f"examples[{i}]"))
    else:
        request_input.example_list.examples.extend(
            _example(features, f"examples[{i}]") for i, features in enumerate(examples))
    return request_input


def _float(value: float) -> float:
    return float(str(np.float32(value)))  # the float32 a score is, in its shortest text


def classification_json(result: Any) -> dict[str, Any]:
    return {"results": [[[c.label, _float(c.score)] for c in classification.classes]
                        for classification in result.classifications]}


def regression_json(result: Any) -> dict[str, Any]:
    return {"results": [_float(r.value) for r in result.regressions]}
