"""``python -m glyphlab``: the CLI, also as torchrun's module target (``torchrun -m glyphlab run ...``)."""

from glyphlab.cli import main

if __name__ == "__main__":
    main()
