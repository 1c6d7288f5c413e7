"""The file names a saved model folder and a model's training write, defined once for every layer.

A model writes these names without knowing about runs (``models/persistence.py`` the manifest, the torch loop
its checkpoint and history); :mod:`glyphlab.runfolder` places them inside a run's ``models/NAME`` folder and
imports them from here, so the model layer never imports the run folder above it.
"""

MANIFEST = "manifest.json"  # the saved model's own list of files with their SHA-256 (models/persistence.py)
CHECKPOINT = "checkpoint"  # the torch loop's resumable state, a folder beside the model
HISTORY = "history.csv"  # one row per epoch: losses, accuracies, learning rate, seconds
