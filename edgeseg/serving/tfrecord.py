"""TFRecord files read without TensorFlow (what warmup.py replays).

Contract: :func:`records` yields each record's bytes of a TFRecord file (uncompressed, as
``tf.io.TFRecordWriter`` writes it by default): per record a little-endian uint64 length,
the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. Both
CRCs are checked; a short file or a wrong CRC raises :class:`~edgeseg.errors.DataLoss`
naming the record and what is wrong. Pure Python, no I/O beyond reading the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from edgeseg.errors import DataLoss

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's mask: rotate right by 15 and add a constant (crc32c.h's Mask)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        index = 0
        while True:
            index += 1
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataLoss(f"{path}: record {index} is truncated (header of {len(header)} "
                               "bytes, expected 12)")
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if masked_crc(length_bytes) != length_crc:
                raise DataLoss(f"{path}: record {index}: corrupt length (CRC mismatch); "
                               "not a TFRecord file?")
            (length,) = struct.unpack("<Q", length_bytes)
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataLoss(f"{path}: record {index} is truncated ({len(data)} of {length} "
                               "bytes)")
            if masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise DataLoss(f"{path}: record {index}: corrupt data (CRC mismatch)")
            yield data
