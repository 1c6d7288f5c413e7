"""A glyphlab model as an MLflow pyfunc model, "models from code": MLflow stores this file, not a pickle.

``glyphlab run --register NAME`` saves the best model with ``python_model=<this file>`` and the model's own
folder (manifest + SHA-256 of every file, weights as safetensors/skops, optional ONNX export) as the
artifact ``model``. MLflow runs this file to get the model object (``mlflow.models.set_model``), and
``load_context`` opens the folder with glyphlab's :class:`~glyphlab.serving.predictor.Predictor`: hashes
checked, ONNX Runtime when an export is there, nothing unpickled. So ``mlflow.pyfunc.load_model`` and
``mlflow models serve -m models:/NAME@champion`` answer exactly what ``glyphlab serve`` answers; glyphlab must
be installed where the model is served (``pip install 'glyphlab[serve]'``).

Input: images as floats in [0, 1], ink = 1, an array ``(n, H, W)`` of the model's input shape (the signature
says which; MLflow's ``{"inputs": ...}``). Output: one row per image, the server's answer (``label``,
``class_name``, ``probabilities`` by class name, ``top``, ``model_id``). Loaded without MLflow's signature
check, ``(n, H*W)`` rows and images of another size (prepared as the model's manifest says) work too.
"""

from __future__ import annotations

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

#: the artifact key of the glyphlab model folder
ARTIFACT = "model"
#: how many classes each answer's ``top`` lists
TOP_K = 3


class GlyphlabPyfunc(PythonModel):
    def load_context(self, context):  # noqa: ANN001
        from glyphlab.serving.predictor import Predictor

        self.predictor = Predictor(context.artifacts[ARTIFACT])

    # no type hints here: MLflow 3 would validate and convert the input from them instead of the signature's
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        import pandas as pd

        p = self.predictor
        h, w = p.input_shape
        if isinstance(model_input, dict) and len(model_input) == 1:  # a named tensor input
            model_input = next(iter(model_input.values()))
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim == 2 and x.shape[1] == h * w:
            x = x.reshape(len(x), h, w)
        elif x.ndim == 2:  # one image of another size
            x = x[None]
        if x.ndim != 3:
            raise ValueError(
                f"expected images (n, {h}, {w}) or rows (n, {h * w}) of floats in [0, 1], "
                f"got an array of shape {x.shape}"
            )
        if x.shape[1:] != (h, w):
            x = np.stack([p.prepare_pixels(im) for im in x])
        probs = p.predict(x)
        return pd.DataFrame([{**p.describe(row, TOP_K), "model_id": p.model_id} for row in probs])


mlflow.models.set_model(GlyphlabPyfunc())
