"""Flatbuffer surgery: one TFLite model made of three, run one after the other.

:func:`splice` joins a pre-processing model, a core model and a post-processing model
into ONE subgraph. The core's operators, tensors (quantization included) and buffers
are copied verbatim, so its int8 kernels compute exactly what they computed in the
source file. The seams are tensors, not copies: the pre model's output tensor IS the
core's input tensor (the pre model's last operator writes into it, and the core's
first operators read it with its own quantization), and the post model reads the core's
output tensor and, by name, the pre model's inputs (e.g. the raw frame, for its size).

Only the object API of the schema module TensorFlow ships is used (``ModelT``); the
result has one ``serving_default`` SignatureDef with the names given.
"""

from __future__ import annotations

from typing import Any

from edgeseg.errors import InvalidArgument
from edgeseg.model_contract import IMAGES, SEGMENTATION_MAP, SERVING_DEFAULT


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def load(data: bytes) -> Any:
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    if not model.subgraphs:
        raise InvalidArgument("expected a TFLite model with a subgraph, got none")
    return model


def io_names(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Signature input/output names -> tensor indices (the subgraph's own order, named
    by tensor name, when the model has no SignatureDef)."""
    graph = model.subgraphs[0]
    if model.signatureDefs:
        sig = model.signatureDefs[0]
        return ({_text(m.name): m.tensorIndex for m in sig.inputs},
                {_text(m.name): m.tensorIndex for m in sig.outputs})
    return ({_text(graph.tensors[i].name): i for i in graph.inputs},
            {_text(graph.tensors[i].name): i for i in graph.outputs})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def splice(pre: bytes, core: bytes, post: bytes) -> bytes:
    """``pre`` (input ``images``, one output) + ``core`` (one input, its first output)
    + ``post`` (inputs ``scores`` and ``images``, one output) -> one model with the
    signature ``serving_default``: ``images`` -> ``segmentation_map``. Inputs are
    found by name (the converter names them after the ``tf.function``'s specs)."""
    result = load(pre)
    graph = result.subgraphs[0]
    pre_in, _ = io_names(result)
    images, net_input = pre_in[IMAGES], _only_output(result)
    opcodes = {_opcode_key(c): i for i, c in enumerate(result.operatorCodes)}

    core_model = load(core)
    core_graph = core_model.subgraphs[0]
    if len(_list(core_graph.inputs)) != 1:
        raise InvalidArgument("splice: the core model must have one input")
    base = _append(result, core_model, opcodes, {})
    core_in = base + _list(core_graph.inputs)[0]
    core_out = base + _list(core_graph.outputs)[0]
    _check_seam(graph.tensors[net_input], graph.tensors[core_in])
    # The pre model's last operator writes the core's input tensor (with the core's
    # own quantization), so nothing is copied at the seam.
    _replace_tensor(graph, net_input, core_in)

    post_model = load(post)
    post_in, _ = io_names(post_model)
    post_output = _only_output(post_model)
    base = _append(result, post_model, opcodes,
                   {post_in["scores"]: core_out, post_in[IMAGES]: images})
    return _finish(result, images, base + post_output)


def with_signature(data: bytes) -> bytes:
    """A converted one-input, one-output model with the ``serving_default`` SignatureDef
    the SavedModel has (``from_concrete_functions`` writes none)."""
    model = load(data)
    inputs, _ = io_names(model)
    if len(inputs) != 1:
        raise InvalidArgument(f"expected one input, got {sorted(inputs)}")
    return _finish(model, next(iter(inputs.values())), _only_output(model))


def _finish(model: Any, images: int, output: int) -> bytes:
    import flatbuffers

    schema = _schema()
    graph = model.subgraphs[0]
    graph.inputs = [images]
    graph.outputs = [output]
    signature = schema.SignatureDefT()
    signature.signatureKey = SERVING_DEFAULT
    signature.subgraphIndex = 0
    signature.inputs = [_tensor_map(schema, IMAGES, images)]
    signature.outputs = [_tensor_map(schema, SEGMENTATION_MAP, output)]
    model.signatureDefs = [signature]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _append(result: Any, model: Any, opcodes: dict[tuple[Any, ...], int],
            bind: dict[int, int]) -> int:
    """Append ``model``'s main subgraph's tensors and operators to ``result``'s, its
    other subgraphs (a WHILE's condition and body, …) as subgraphs of ``result``, and
    its buffers; its tensors in ``bind`` are replaced by ``result``'s. Returns the
    tensor index offset of the main subgraph."""
    graph, sub = result.subgraphs[0], model.subgraphs[0]
    tensor_base, buffer_base = len(graph.tensors), len(result.buffers)
    subgraph_base = len(result.subgraphs) - 1  # model's subgraph k>0 -> base + k
    result.buffers.extend(model.buffers)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors or []:
            tensor.buffer = buffer_base + tensor.buffer
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            key = _opcode_key(code)
            if key not in opcodes:
                opcodes[key] = len(result.operatorCodes)
                result.operatorCodes.append(code)
            op.opcodeIndex = opcodes[key]
            _shift_subgraph_indices(op, subgraph_base)
    graph.tensors.extend(sub.tensors)
    result.subgraphs.extend(model.subgraphs[1:])

    def index(i: int) -> int:
        return i if i < 0 else bind.get(i, tensor_base + i)

    for op in sub.operators:
        op.inputs = [index(i) for i in _list(op.inputs)]
        op.outputs = [index(i) for i in _list(op.outputs)]
        if op.intermediates is not None:
            op.intermediates = [index(i) for i in _list(op.intermediates)]
        graph.operators.append(op)
    return tensor_base


def _shift_subgraph_indices(op: Any, offset: int) -> None:
    """WHILE, IF, CALL_ONCE, … name subgraphs by index in their options."""
    options = op.builtinOptions
    if options is None or not offset:
        return
    for name, value in vars(options).items():
        if "ubgraph" in name and isinstance(value, int):
            setattr(options, name, value + offset)


def _only_output(model: Any) -> int:
    outputs = _list(model.subgraphs[0].outputs)
    if len(outputs) != 1:
        raise InvalidArgument(f"splice: expected one output, got {len(outputs)}")
    return outputs[0]


def _check_seam(produced: Any, consumed: Any) -> None:
    if produced.type != consumed.type or _list(produced.shape) != _list(consumed.shape):
        raise InvalidArgument(
            f"splice: the pre-processing writes type {produced.type} shape "
            f"{_list(produced.shape)}, the core reads type {consumed.type} shape "
            f"{_list(consumed.shape)}")


def _replace_tensor(graph: Any, old: int, new: int) -> None:
    """Every operator that wrote or read ``old`` now uses ``new``."""
    for op in graph.operators:
        op.inputs = [new if i == old else i for i in _list(op.inputs)]
        op.outputs = [new if i == old else i for i in _list(op.outputs)]
    graph.inputs = [new if i == old else i for i in _list(graph.inputs)]
    graph.outputs = [new if i == old else i for i in _list(graph.outputs)]


def _tensor_map(schema: Any, name: str, index: int) -> Any:
    entry = schema.TensorMapT()
    entry.name = name
    entry.tensorIndex = index
    return entry


def _list(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _opcode_key(code: Any) -> tuple[Any, ...]:
    custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
    return (code.builtinCode, code.deprecatedBuiltinCode, custom, code.version)
