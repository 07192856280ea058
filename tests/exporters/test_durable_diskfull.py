"""An export into a full file system fails with one clear line naming ENOSPC and the file,
and leaves BASE byte for byte as it was, with no staging folder left behind."""

from __future__ import annotations

import re

import pytest

from edgeseg import cli
from edgeseg.errors import ResourceExhausted
from exporters.writer import export
from tests.diskfull import digest, fill, free_bytes, small_tmpfs

from .conftest import tiny_model

# tiny_model's version: variables ~0.6 KB, saved_model.pb ~120 KB, warmup file ~0.9 MB.
SIZE = "4m"


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """A 4 MB tmpfs holding BASE with version 1; each test fills what is left."""
    with small_tmpfs(tmp_path_factory.mktemp("diskfull") / "mnt", SIZE) as mount:
        export(tiny_model(seed=1), mount / "m")
        yield mount


def leftovers(mount) -> list[str]:
    return sorted(p.name for p in mount.iterdir() if p.name not in ("m", ".filler"))


@pytest.mark.parametrize(("leave", "where"), [
    (0, r"variables/\S+"),                          # TF's checkpoint writer
    (20_000, r"saved_model\.pb\S*"),                # the SavedModel builder, or strip_devices
    (900_000, r"assets\.extra/tf_serving_warmup_requests"),  # the warmup TFRecord
], ids=["nothing-left", "20KB-left", "900KB-left"])
def test_export_into_a_full_disk_fails_clearly_and_leaves_base_alone(full_disk, leave, where):
    base = full_disk / "m"
    before = digest(base)
    filler = fill(full_disk, leave)
    try:
        assert free_bytes(full_disk) <= leave + 8192
        with pytest.raises(ResourceExhausted) as raised:
            export(tiny_model(seed=2), base)
    finally:
        filler.unlink()
    message = str(raised.value)
    assert re.search(rf"^no space left on device while writing {where} under {base}; ",
                     message), message
    assert digest(base) == before
    assert leftovers(full_disk) == []


def test_cli_says_it_in_one_line_and_a_later_export_succeeds(full_disk, capsys):
    base = full_disk / "m"
    before = digest(base)
    filler = fill(full_disk, 0)
    try:
        code = cli.main(["export", "deeplabv3", "--output", str(base), "--input-size", "33",
                         "--depth-multiplier", "0.35", "--num-classes", "3", "--quiet"])
    finally:
        filler.unlink()
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("edgeseg export: error: no space left on device while writing ")
    assert f"under {base}" in err[-1]
    assert digest(base) == before and leftovers(full_disk) == []
    # with the space back, the same export goes through: the failure was the disk's
    assert export(tiny_model(seed=3), base).version == 2
