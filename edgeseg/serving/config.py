"""Which models to serve: the model_config_list text proto, or one model from flags.

Contract: :func:`parse_model_config` turns TF Serving's ``ModelServerConfig`` text proto
(``model_config_list { config { name, base_path, model_platform, model_version_policy,
version_labels } }``) into validated :class:`ModelConfig` values, or raises
:class:`~edgeseg.errors.InvalidArgument` naming the file, line and key at fault. It does no
I/O besides reading the file in :func:`load_model_config_file`, and imports no TensorFlow.

Beyond TF Serving, three optional fields per ``config`` entry (real proto fields, not
comments; TF Serving would reject them, so a config using them is edgeseg-only)::

    saved_model_tags: "serve_quantized"          # the meta-graph to load (repeatable)
    aspired_version_policy: "resource_preserving" # or "availability_preserving"
    prefer_tflite_model: true                    # serve model.tflite where a version has one

so one server can serve ``deeplab`` ({serve}) and ``deeplab_int8`` ({serve_quantized}, or
its ``model.tflite``) from the same export side by side. They default to the server's flags
(``--saved_model_tags``, ``--aspired_version_policy``, ``--prefer_tflite_model``). The fields
are parsed through a copy of ``ModelConfig`` with extra field numbers (1001-1003; the last a
proto3 ``optional``, so "false" overrides a true flag), so the text-format parser reports
errors in them as in any other field.
A malformed file is refused in TF Serving's words (textproto.py): ``Error parsing
text-format tensorflow.serving.ModelServerConfig: LINE:COLUMN: ...``, naming TF
Serving's message types rather than our copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2, message_factory

from edgeseg.errors import InvalidArgument
from edgeseg.model_contract import TAG_FLOAT
from edgeseg.serving import textproto
from edgeseg.serving.policy import PreservePolicy, VersionPolicy, VersionPolicyKind
from edgeseg.wire.apis import model_server_config_pb2
from edgeseg.wire.schema import POOL, Message, MessageClass

_EXT_PACKAGE = textproto.PACKAGE
_RETARGET = {
    ".tensorflow.serving.ModelConfig",
    ".tensorflow.serving.ModelConfig.VersionLabelsEntry",
    ".tensorflow.serving.ModelConfigList",
}


@dataclass(frozen=True)
class ModelConfig:
    """One model the server serves, validated."""

    name: str
    base_path: str
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: Mapping[str, int] = field(default_factory=dict)
    tags: tuple[str, ...] = (TAG_FLOAT,)
    preserve: PreservePolicy = PreservePolicy.AVAILABILITY
    prefer_tflite: bool | None = None  # None: as --prefer_tflite_model says


def split_tags(text: str) -> tuple[str, ...]:
    """'serve,gpu' -> ('serve', 'gpu'); as TF Serving's --saved_model_tags."""
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tags:
        raise InvalidArgument(f"saved_model_tags must name at least one tag, got {text!r}")
    return tags


def parse_preserve(text: str) -> PreservePolicy:
    try:
        return PreservePolicy(text)
    except ValueError:
        choices = ", ".join(p.value for p in PreservePolicy)
        raise InvalidArgument(
            f"aspired_version_policy must be one of {choices}, got {text!r}"
        ) from None


def _extended_config_class() -> MessageClass:
    """ModelServerConfig whose ModelConfig also has saved_model_tags, aspired_version_policy."""
    pool = POOL  # edgeseg.wire's, where TF-free model_server_config.proto lives
    full = f"{_EXT_PACKAGE}.ModelServerConfig"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    except KeyError:
        pass
    official = model_server_config_pb2
    fdp = descriptor_pb2.FileDescriptorProto(
        name="edgeseg/serving/model_server_config_ext.proto", package=_EXT_PACKAGE,
        syntax="proto3",
    )
    fdp.dependency.extend([official.DESCRIPTOR.name])
    fdp.dependency.extend(d.name for d in official.DESCRIPTOR.dependencies)
    for cls in (official.ModelConfig, official.ModelConfigList, official.ModelServerConfig):
        msg = fdp.message_type.add()
        cls.DESCRIPTOR.CopyToProto(msg)
        for f in msg.field:  # point our copies at each other, not at the originals
            if f.type_name in _RETARGET:
                f.type_name = f.type_name.replace(".tensorflow.serving.", f".{_EXT_PACKAGE}.")
    model_config = fdp.message_type[0]
    model_config.field.add(name="saved_model_tags", number=1001, type=9, label=3)
    model_config.field.add(name="aspired_version_policy", number=1002, type=9, label=1)
    model_config.oneof_decl.add(name="_prefer_tflite_model")  # proto3 optional: has presence
    model_config.field.add(name="prefer_tflite_model", number=1003, type=8, label=1,
                           proto3_optional=True,
                           oneof_index=len(model_config.oneof_decl) - 1)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))


def parse_model_config(
    text: str,
    origin: str = "model config",
    default_tags: Sequence[str] = (TAG_FLOAT,),
    default_preserve: PreservePolicy = PreservePolicy.AVAILABILITY,
) -> list[ModelConfig]:
    """The models of a ModelServerConfig text proto; InvalidArgument on anything wrong."""
    extended = textproto.parse(_extended_config_class(), text, origin)
    return _models(extended, origin, tuple(default_tags), default_preserve)


def models_from_proto(
    config: Message,  # a tensorflow.serving.ModelServerConfig
    origin: str,
    default_tags: Sequence[str] = (TAG_FLOAT,),
    default_preserve: PreservePolicy = PreservePolicy.AVAILABILITY,
) -> list[ModelConfig]:
    """The models of an official ModelServerConfig message (HandleReloadConfigRequest)."""
    extended = _extended_config_class().FromString(config.SerializeToString())
    return _models(extended, origin, tuple(default_tags), default_preserve)


def _models(extended, origin: str, default_tags: tuple[str, ...],
            default_preserve: PreservePolicy) -> list[ModelConfig]:
    if extended.WhichOneof("config") == "custom_model_config":
        raise InvalidArgument(f"{origin}: custom_model_config is not supported; "
                              "use model_config_list")
    models = [
        _model(entry, f"{origin}: config #{i + 1}", default_tags, default_preserve)
        for i, entry in enumerate(extended.model_config_list.config)
    ]
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise InvalidArgument(f"{origin}: model name {model.name!r} is configured twice")
        seen.add(model.name)
    return models


def _model(entry, where: str, default_tags: tuple[str, ...],
           default_preserve: PreservePolicy) -> ModelConfig:
    if not entry.name:
        raise InvalidArgument(f"{where}: name is missing")
    where = f"{where} ({entry.name})"
    if not entry.base_path:
        raise InvalidArgument(f"{where}: base_path is missing")
    if entry.model_platform not in ("", "tensorflow"):
        raise InvalidArgument(
            f"{where}: model_platform {entry.model_platform!r} is not supported; "
            "only 'tensorflow' SavedModels are served"
        )
    tags = tuple(t for raw in entry.saved_model_tags for t in split_tags(raw)) or default_tags
    preserve = (parse_preserve(entry.aspired_version_policy) if entry.aspired_version_policy
                else default_preserve)
    return ModelConfig(
        name=entry.name,
        base_path=entry.base_path,
        policy=_version_policy(entry.model_version_policy, where),
        labels=dict(entry.version_labels),
        tags=tags,
        preserve=preserve,
        prefer_tflite=(entry.prefer_tflite_model if entry.HasField("prefer_tflite_model")
                       else None),
    )


def _version_policy(proto, where: str) -> VersionPolicy:
    kind = proto.WhichOneof("policy_choice")
    try:
        if kind == "all":
            return VersionPolicy(VersionPolicyKind.ALL)
        if kind == "specific":
            return VersionPolicy(VersionPolicyKind.SPECIFIC,
                                 versions=frozenset(proto.specific.versions))
        if kind == "latest" and proto.latest.num_versions:
            return VersionPolicy(VersionPolicyKind.LATEST, num_versions=proto.latest.num_versions)
        return VersionPolicy()
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def load_model_config_file(
    path: str | Path,
    default_tags: Sequence[str] = (TAG_FLOAT,),
    default_preserve: PreservePolicy = PreservePolicy.AVAILABILITY,
) -> list[ModelConfig]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --model_config_file {path}: {exc.strerror}") from None
    return parse_model_config(text, f"model config file {path}", default_tags, default_preserve)
