"""Tag-sets: --saved_model_tags picks the meta-graph; per-model tags serve both side by side.

The model is ONE SavedModel with {serve} (y = x + 1) and {serve_quantized} (y = x + 100)
sharing one variables checkpoint, as `edgeseg export` writes them.
"""

from __future__ import annotations

import pytest

from .models import two_tag_model
from .test_server_tfserving import predict_request


@pytest.fixture(scope="module")
def tagged(serve, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "two_tags"
    two_tag_model(base / "1")
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "float" base_path: "{base}" saved_model_tags: "serve" }}
      config {{ name: "int8" base_path: "{base}" }}
    }}""")
    return serve(f"--model_config_file={config}", "--saved_model_tags=serve_quantized")


@pytest.mark.parametrize(("name", "expected"), [("int8", [101.0, 102.0]), ("float", [2.0, 3.0])],
                         ids=["flag-serve_quantized", "per-model-serve"])
def test_each_model_serves_its_meta_graph(tagged, name, expected):
    response = tagged.predict.Predict(predict_request(name, [1.0, 2.0]), timeout=30)
    assert list(response.outputs["y"].float_val) == expected
