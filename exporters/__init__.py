"""Exporters: turn a trained segmentation model into the kit's SavedModel.

Every source (the built-in DeepLab-v3, later Keras files, TFLite flatbuffers and
frozen graphs) describes itself as a :class:`exporters.model.SegmentationModel` and
goes through ONE writer, :func:`exporters.writer.export`, which owns the format:
tag-sets {serve} and {serve_quantized} over one variables checkpoint, no device
placements, three signatures, assets and an atomic versioned write.
"""
