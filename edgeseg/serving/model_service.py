"""GetModelMetadata, GetModelStatus and HandleReloadConfigRequest, transport-independent.

Contract (as TF Serving's get_model_metadata_impl, get_model_status_impl and
model_service_impl): metadata is the loaded meta-graph's ``signature_def`` map packed as
a ``SignatureDefMap`` under the key "signature_def" (the only metadata field there is), for
the version the spec resolves to; the response spec names model and version, no signature.
Status lists the states of every version known for the model (highest first), or of the one
asked for; a version whose load failed is END with its error. Reload replaces the served
models with the request's model_config_list, returns once their first loads settled, and
answers OK or raises the error that kept the new config from applying.
"""

from __future__ import annotations

from typing import Any

from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.serving.config import models_from_proto
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.predict import fill_model_spec
from edgeseg.serving.servable import Servable
from edgeseg.wire.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
)
from edgeseg.wire.schema import Message

SIGNATURE_DEF = "signature_def"


def get_model_metadata(core: Core, request: Any) -> Message:
    if not request.metadata_field:
        raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise InvalidArgument(f"Metadata field {field} is not supported")
    with core.handle(request.model_spec) as handle:
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        fill_model_spec(response.model_spec, handle.name, handle.version)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in handle.model.signature_defs.items():
            # edgeseg.wire's SignatureDef, whatever the runtime (loader.py converts a
            # SavedModel's once per version)
            signature_map.signature_def[key].CopyFrom(signature)
        response.metadata[SIGNATURE_DEF].Pack(signature_map)
        return response


def _fill_status(out: Any, servable: Servable) -> None:
    out.version = servable.version
    out.state = int(servable.state)
    out.status.SetInParent()  # OK is reported as an empty status, as TF Serving does
    error = servable.error
    if error is not None:
        out.status.error_code = int(error.status)
        out.status.error_message = error.message


def get_model_status(core: Core, request: Any) -> Message:
    spec = request.model_spec
    if not spec.name:
        raise InvalidArgument("Missing ModelSpec name")
    version = core.resolve_version(spec)
    servables = core.version_states(spec.name)
    if version is not None:
        servables = [s for s in servables if s.version == version]
        if not servables:
            raise NotFound(f"Could not find version {version} of model {spec.name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for servable in servables:
        _fill_status(response.model_version_status.add(), servable)
    return response


def reload_config(core: Core, request: Any) -> Message:
    if request.config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument("ReloadConfigRequest.config must hold a model_config_list")
    models = models_from_proto(request.config, "ReloadConfigRequest",
                               core.options.default_tags, core.options.default_preserve)
    core.apply_config(models)
    return model_management_pb2.ReloadConfigResponse()
