"""The TFLite choice from flags and from the config file, down to the loader factory."""

from __future__ import annotations

import pytest

from edgeseg.errors import InvalidArgument
from edgeseg.serving.command import _check_flags
from edgeseg.serving.config import parse_model_config
from edgeseg.serving.flags import parse_flags
from edgeseg.serving.manager import Manager, StreamOptions


def test_tf_serving_flags_and_their_defaults():
    flags = parse_flags([])
    assert (flags.prefer_tflite_model, flags.num_tflite_interpreters_per_pool) == (False, 1)
    assert flags.num_tflite_pools >= 1 and flags.tflite_num_threads == 0
    flags = parse_flags(["--prefer_tflite_model", "--num_tflite_pools=3",
                         "--num_tflite_interpreters_per_pool", "2", "--tflite_num_threads=4"])
    assert (flags.prefer_tflite_model, flags.num_tflite_pools,
            flags.num_tflite_interpreters_per_pool, flags.tflite_num_threads) == (True, 3, 2, 4)
    assert parse_flags(["--prefer_tflite_model=false"]).prefer_tflite_model is False


@pytest.mark.parametrize(("flag", "message"), [
    ("--num_tflite_pools=0", "--num_tflite_pools must be >= 1"),
    ("--num_tflite_interpreters_per_pool=0", "--num_tflite_interpreters_per_pool must be >= 1"),
    ("--tflite_num_threads=-1", "--tflite_num_threads must be >= 0"),
])
def test_out_of_range_tflite_flags_are_refused(flag, message):
    with pytest.raises(InvalidArgument, match=message):
        _check_flags(parse_flags([flag]))


def test_the_config_file_chooses_per_model():
    models = parse_model_config("""model_config_list {
      config { name: "deeplab" base_path: "/m" prefer_tflite_model: false }
      config { name: "deeplab_int8" base_path: "/m" prefer_tflite_model: true }
      config { name: "default" base_path: "/m" }
    }""")
    assert [m.prefer_tflite for m in models] == [False, True, None]  # None: the flag decides
    with pytest.raises(InvalidArgument,
                       match=r"ModelServerConfig: 3:49: .*Expected \"true\" or \"false\""):
        parse_model_config('model_config_list {\n config {\n name: "a" base_path: "/m" '
                           "prefer_tflite_model: sometimes } }")


def test_the_manager_passes_the_models_choice_to_the_loader_factory():
    calls = []

    class Model:
        def close(self) -> None:
            pass

    def factory(path, tags, **extra):
        calls.append((path, extra))
        return type("L", (), {"load": lambda self: Model()})()

    manager = Manager(factory, max_load_retries=0)
    manager.set_options("lite", StreamOptions(("serve",), prefer_tflite=True))
    manager.set_options("saved", StreamOptions(("serve",), prefer_tflite=False))
    manager.set_options("flag", StreamOptions(("serve",)))
    manager.start()
    try:
        for name in ("lite", "saved", "flag"):
            manager.set_aspired_versions(name, {1: f"/{name}/1"})
        assert manager.wait_settled(timeout=10)
    finally:
        manager.stop(1)
    assert sorted(calls) == [("/flag/1", {}), ("/lite/1", {"prefer_tflite": True}),
                             ("/saved/1", {"prefer_tflite": False})]
