"""Serving: preprocessing of uploaded images, a predictor (ONNX Runtime or the model itself), ONNX export and
the HTTP app with its drawing page. Import the submodules; this package imports nothing heavy on its own."""
