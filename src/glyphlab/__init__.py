"""glyphlab: from a folder of handwritten-character images to a trained, evaluated and served classifier."""

__version__ = "0.1.0"
