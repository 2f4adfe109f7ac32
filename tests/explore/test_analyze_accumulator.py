"""hwgen analyze --acc-width (hwgen/explore/analyze.py accumulator_report): intrinsic vs
extrinsic quantization, the intrinsic accuracies checked against the torch quantized model
of a scheme with that accumulator."""

import json

import numpy as np
import torch

from hwgen.explore.analyze import accumulator_report
from hwgen.flow import load_quantized


def test_report_against_the_torch_model(tmp_path):
    q = load_quantized("builtin:mlp", "fixed8")
    x, y = q.dataset.x_test[:120], np.asarray(q.dataset.y_test[:120])
    report = accumulator_report(q, 14, x, y)
    assert [r[0] for r in report.rows] == ["extrinsic", "intrinsic saturate", "intrinsic wrap"]
    assert report.rows[0][1] == q.accuracy(x, y)
    for (_, acc, overflows), mode in zip(report.rows[1:], ("saturate", "wrap")):
        spec = tmp_path / f"{mode}.json"
        spec.write_text(json.dumps({"default": {"width": 8, "acc_width": 14,
                                                "acc_overflow": mode}}))
        narrow = load_quantized("builtin:mlp", str(spec))
        with torch.no_grad():
            out = narrow.module.eval()(torch.tensor(np.array(x)).double())
        assert acc == float(np.mean(out.argmax(1).numpy() == y))
        assert overflows > 0
    assert report.rows[1][1] < report.rows[0][1]
    assert "intrinsic wrap" in report.format_table()
    assert report.to_json()["rows"][2]["quantization"] == "intrinsic wrap"
