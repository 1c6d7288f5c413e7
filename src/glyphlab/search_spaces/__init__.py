"""Search spaces shipped with glyphlab: ``glyphlab search --space NAME`` finds ``NAME.toml`` here."""
