"""glyphlab's version, in a module of its own so that every layer can import it.

``glyphlab/__init__.py`` imports the public API, the top layer; a model's manifest or a tracker that records
the version would otherwise import upward (docs/architecture.md). Keep it equal to pyproject.toml's version.
"""

__version__ = "0.1.0"
