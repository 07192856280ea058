"""The operator registry and the int8 arithmetic, as pure units (no flatbuffer, no graph)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.errors import InvalidArgument, Unimplemented
from exporters.tflite_ops import OPS, check_supported, read_options
from exporters.tflite_quant import ACTIVATIONS, activation_range, quantize_multiplier


def test_every_options_table_and_field_exists_in_the_schema():
    """One entry per operator: its options table and every field it reads are TFLite's."""
    from tensorflow.lite.python import schema_py_generated as schema

    builtin = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    for name, spec in OPS.items():
        assert callable(spec.build), name
        if name.startswith("CUSTOM:"):
            assert spec.custom_options is not None, name
            continue
        assert name in builtin, f"{name} is not a TFLite builtin operator"
        if spec.table is None:
            assert spec.fields == (), name
            continue
        table = getattr(schema, spec.table)
        for field in spec.fields:
            assert hasattr(table, field), f"{name}: {spec.table} has no field {field}"


def test_filters_are_declared_by_the_operators_that_have_them():
    filters = {name: spec.filter for name, spec in OPS.items() if spec.filter}
    assert filters == {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise",
                       "TRANSPOSE_CONV": "transpose",
                       "CUSTOM:Convolution2DTransposeBias": "transpose"}


class _Op:
    def __init__(self, name, options=None, custom=b""):
        self.index, self.name, self.options = 3, name, options or {}
        self._custom = custom

    def CustomOptionsAsNumpy(self):
        return np.frombuffer(self._custom, np.uint8)

    def BuiltinOptions(self):
        return None


class _Fb:
    def __init__(self, ops):
        from pathlib import Path

        self.path, self.operators = Path("m.tflite"), ops


def test_custom_transpose_bias_options_are_read_from_its_struct():
    raw = np.array([2, 4, 3], "<i4").tobytes()  # VALID, stride w 4, stride h 3
    got = read_options(None, "CUSTOM:Convolution2DTransposeBias",
                       _Op("CUSTOM:Convolution2DTransposeBias", custom=raw))
    assert got == {"Padding": 1, "StrideW": 4, "StrideH": 3}
    with pytest.raises(InvalidArgument, match="expected 12"):
        read_options(None, "CUSTOM:Convolution2DTransposeBias",
                     _Op("CUSTOM:Convolution2DTransposeBias", custom=b"\0" * 4))
    assert read_options(None, "NOT_AN_OP", _Op("NOT_AN_OP")) == {}


def test_check_supported_names_the_operator_and_its_index():
    check_supported(_Fb([_Op("CONV_2D"), _Op("RELU")]))
    with pytest.raises(Unimplemented, match=r"operator 3 is GATHER_ND.*supported: ADD"):
        check_supported(_Fb([_Op("GATHER_ND")]))
    with pytest.raises(Unimplemented, match="fused activation 5"):
        check_supported(_Fb([_Op("ADD", {"FusedActivationFunction": 5})]))


@pytest.mark.parametrize("m", [0.3, 0.5, 0.0078125, 0.999999999, 1e-6])
def test_quantize_multiplier_is_q31_times_a_power_of_two(m):
    fixed, shift = quantize_multiplier(np.array([m]))
    assert abs(fixed[0] * 2.0 ** -shift[0] - m) <= m * 2.0**-30
    q31 = fixed[0] * 2.0**31
    assert q31 == np.round(q31) and 2**30 <= q31 < 2**31


def test_activation_range_is_tflites_integer_clamp():
    # uint8 output, scale 6/255, zero point 0: RELU6 ends at round(6/scale) = 255.
    assert activation_range(3, 6 / 255, 0, 0, 255) == (0.0, 255.0)
    # zero point 128, scale 0.05: RELU starts at 128, RELU_N1_TO_1 at 128 -/+ 20.
    assert activation_range(1, 0.05, 128, 0, 255) == (128.0, 255.0)
    assert activation_range(2, 0.05, 128, 0, 255) == (108.0, 148.0)
    assert activation_range(0, 0.05, 128, 0, 255) == (0.0, 255.0)
    assert set(ACTIVATIONS) == {0, 1, 2, 3, 4}
