"""tfrecord.py reads what TensorFlow's TFRecordWriter writes, and refuses damaged files."""

from __future__ import annotations

import pytest
import tensorflow as tf

from edgeseg.errors import DataLoss
from edgeseg.serving import tfrecord

RECORDS = [b"", b"one", bytes(range(256)) * 40]


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "records"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in RECORDS:
            writer.write(record)
    return path


def test_reads_what_tensorflow_writes(written):
    assert list(tfrecord.records(written)) == RECORDS


def test_crc32c_known_value():
    assert tfrecord.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


@pytest.mark.parametrize(("offset", "complaint"), [(3, "corrupt length"),
                                                   (16 + 12 + 1, "corrupt data")])
def test_a_flipped_byte_is_data_loss(written, offset, complaint):
    data = bytearray(written.read_bytes())
    data[offset] ^= 0x40
    written.write_bytes(bytes(data))
    with pytest.raises(DataLoss, match=complaint):
        list(tfrecord.records(written))


def test_a_truncated_file_is_data_loss(written):
    written.write_bytes(written.read_bytes()[:-5])
    with pytest.raises(DataLoss, match="record 3 is truncated"):
        list(tfrecord.records(written))
