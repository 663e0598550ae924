"""Checks an ONNX file from `cnn export --format onnx` and runs it.

    python run_model.py MODEL IMAGES EXPECTED N

IMAGES: N x C x H x W float32 pixels in [0, 1], raw little-endian; EXPECTED:
the N x classes logits `cnn` computed for them, the same way. Prints
`checker ok`, then `max_abs_diff D`: the largest |ONNX Runtime - cnn|.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, images_path, expected_path, n = sys.argv[1:5]
n = int(n)
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
print("checker ok")

dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
images = np.fromfile(images_path, dtype="<f4").reshape([n] + dims)
expected = np.fromfile(expected_path, dtype="<f4").reshape(n, -1)
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(logits,) = session.run(["logits"], {"images": images})
assert logits.shape == expected.shape, (logits.shape, expected.shape)
print("max_abs_diff", float(np.max(np.abs(logits - expected))))
print("max_abs_logit", float(np.max(np.abs(expected))))
