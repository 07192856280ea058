"""The subscriber API's former home, kept so ``from edgeseg.masks import decode_mask`` still
works for code written against earlier releases. New code imports
:mod:`edgeseg.mqtt_contract`, where these names live (and are documented).
"""

from edgeseg.json_schema import schema_errors
from edgeseg.mqtt_contract import (
    CONTENT_TYPES,
    MASK,
    META,
    META_SCHEMA_ID,
    class_fractions,
    decode_mask,
    decode_meta,
    encode_mask,
    meta_schema,
)

MASK_CONTENT_TYPE = CONTENT_TYPES[MASK]
META_CONTENT_TYPE = CONTENT_TYPES[META]

__all__ = ["MASK_CONTENT_TYPE", "META_CONTENT_TYPE", "META_SCHEMA_ID", "class_fractions",
           "decode_mask", "decode_meta", "encode_mask", "meta_schema", "schema_errors"]
