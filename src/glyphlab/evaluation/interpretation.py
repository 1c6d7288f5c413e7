"""Interpret a model from its saved predictions, the way fastai's ``Interpretation`` does.

Predictions are computed once, when the model is evaluated, and saved as ``predictions.npz``; everything
here (confusion matrix, most-confused pairs, top losses and their figures) is drawn from that file and the
run's saved test images, so a report can restyle every figure without loading a model or retraining one.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from glyphlab.errors import RunFolderError
from glyphlab.evaluation.metrics import compute_metrics, confusion, most_confused
from glyphlab.evaluation.plots import confusion_figure, most_confused_figure, top_losses_figure
from glyphlab.runfolder import ModelFolder, RunFolder

if TYPE_CHECKING:  # pandas is imported when a table is asked for (about a second of start-up otherwise)
    import pandas as pd

#: probabilities are clipped here before the log, so a confident mistake has a large, finite loss
_EPS = 1e-7


class Interpretation:
    """One model's test-set predictions, with the tables and figures a person reads them by.

    Build it with :meth:`from_run` (``run.interpret(name)`` in the public API) or :meth:`from_model_folder`;
    ``images`` (float, 0 to 1) are optional and needed only by the figures that show examples.
    """

    def __init__(
        self,
        y_true: np.ndarray,
        proba: np.ndarray,
        classes: list[str],
        images: np.ndarray | None = None,
        name: str = "model",
        index: np.ndarray | None = None,
    ):
        self.y_true = np.asarray(y_true, dtype=np.int64)
        self.proba = np.asarray(proba, dtype=np.float64)
        if self.proba.ndim != 2 or len(self.proba) != len(self.y_true):
            raise ValueError(f"proba must be (n, classes) for {len(self.y_true)} labels, got {self.proba.shape}")
        self.y_pred = self.proba.argmax(axis=1)
        self.classes = [str(c) for c in classes] or [str(i) for i in range(self.proba.shape[1])]
        self.index = np.arange(len(self.y_true)) if index is None else np.asarray(index, dtype=np.int64)
        self.images = images
        self.name = name

    @classmethod
    def from_model_folder(
        cls, folder: str | Path | ModelFolder, classes: list[str], images: np.ndarray | None = None
    ) -> Interpretation:
        """From ``models/NAME/predictions.npz``; ``images`` are the run's test images (rows match ``index``)."""
        folder = folder if isinstance(folder, ModelFolder) else ModelFolder(folder)
        pred = folder.read_predictions()
        index = pred["index"]
        shown = None
        if images is not None and len(index) and int(index.max()) < len(images):
            shown = images[index]
        return cls(pred["y_true"], pred["proba"], classes, shown, name=folder.name, index=index)

    @classmethod
    def from_run(cls, run: str | Path | RunFolder, name: str) -> Interpretation:
        """Model ``name`` of a run folder, with the run's saved test images when it has them."""
        run = run if isinstance(run, RunFolder) else RunFolder.open(run)
        folder = run.require_model(name)
        try:
            images = run.read_test_images()[0]
        except RunFolderError:  # tables still work; figures of examples say they need the images
            images = None
        return cls.from_model_folder(folder, run.classes, images)

    # -- numbers and tables -----------------------------------------------------------------------------
    @property
    def losses(self) -> np.ndarray:
        """Each test image's cross-entropy loss, ``-log p(true class)``."""
        p_true = self.proba[np.arange(len(self.y_true)), self.y_true]
        return -np.log(np.clip(p_true, _EPS, 1.0))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_pred == self.y_true)) if len(self.y_true) else 0.0

    def metrics(self) -> dict[str, float]:
        """Accuracy, macro/weighted F1, precision and recall (scikit-learn's) from the predictions."""
        return compute_metrics(self.y_true, self.y_pred, len(self.classes))

    def confusion_matrix(self, normalize: bool = False) -> pd.DataFrame:
        """Rows are true classes, columns predicted: integer counts, or each row's shares with ``normalize``."""
        import pandas as pd  # tables only; see the module's note on pandas

        cm = confusion(self.y_true, self.y_pred, len(self.classes), normalize=normalize)
        frame = pd.DataFrame(
            cm, index=pd.Index(self.classes, name="true"), columns=pd.Index(self.classes, name="predicted")
        )
        return frame

    def most_confused(self, k: int = 5, min_count: int = 1) -> pd.DataFrame:
        """The ``k`` (true, predicted) pairs mistaken most often, largest count first (fastai's ``most_confused``)."""
        import pandas as pd

        pairs = most_confused(
            confusion(self.y_true, self.y_pred, len(self.classes)), self.classes, k=k, min_count=min_count
        )
        return pd.DataFrame(pairs, columns=["true", "predicted", "count", "rate"])

    def top_losses(self, k: int = 16) -> pd.DataFrame:
        """The ``k`` test images with the largest loss: the most confident mistakes first.

        ``image`` is the row's index in the run's test_images.npz, so ``run.read_test_images()[0][image]``
        shows it.
        """
        import pandas as pd

        order = self._top(k)
        return pd.DataFrame(
            {
                "image": self.index[order],
                "true": [self.classes[i] for i in self.y_true[order]],
                "predicted": [self.classes[i] for i in self.y_pred[order]],
                "probability": self.proba[order, self.y_pred[order]],
                "p_true": self.proba[order, self.y_true[order]],
                "loss": self.losses[order],
            }
        )

    def _top(self, k: int) -> np.ndarray:
        return np.argsort(-self.losses, kind="stable")[: max(0, int(k))]

    # -- figures ----------------------------------------------------------------------------------------
    def plot_confusion_matrix(self, normalize: bool = False, title: str | None = None) -> Figure:
        """The confusion matrix as a Matplotlib Figure (counts, or row shares with ``normalize``)."""
        cm = confusion(self.y_true, self.y_pred, len(self.classes), normalize=normalize)
        what = "row-normalised" if normalize else "counts"
        return confusion_figure(cm, self.classes, title or f"{self.name}: confusion matrix ({what})", normalize)

    def plot_most_confused(self, k: int = 8, per_pair: int = 6, title: str | None = None) -> Figure:
        """Examples of each of the ``k`` most-confused pairs, one row per pair (needs the test images)."""
        images = self._need_images("plot_most_confused")
        pairs = most_confused(confusion(self.y_true, self.y_pred, len(self.classes)), self.classes, k=k)
        return most_confused_figure(
            pairs,
            images,
            self.y_true,
            self.y_pred,
            title or f"{self.name}: most-confused pairs (true → predicted)",
            per_pair,
        )

    def plot_top_losses(self, k: int = 16, columns: int = 8, title: str | None = None) -> Figure:
        """The ``k`` test images with the largest loss, each titled predicted / true / loss / probability."""
        images = self._need_images("plot_top_losses")
        order = self._top(k)
        return top_losses_figure(
            images[order],
            [self.classes[i] for i in self.y_true[order]],
            [self.classes[i] for i in self.y_pred[order]],
            self.proba[order, self.y_pred[order]],
            self.losses[order],
            title or f"{self.name}: top losses",
            columns=columns,
        )

    def _need_images(self, what: str) -> np.ndarray:
        if self.images is None:
            raise RunFolderError(
                f"{what} shows test images, and this run folder has none (no test_images.npz): "
                "the tables (confusion_matrix, most_confused, top_losses) still work"
            )
        return self.images

    def __repr__(self) -> str:
        return (
            f"Interpretation({self.name!r}: {len(self.y_true):,} test images, {len(self.classes)} classes, "
            f"accuracy {self.accuracy:.4f})"
        )

    def _repr_html_(self) -> str:
        """Jupyter: the model's accuracy and its most-confused pairs as an HTML table."""
        head = (
            f"<p><b>{html.escape(self.name)}</b>: {len(self.y_true):,} test images, {len(self.classes)} classes, "
            f"accuracy <b>{self.accuracy:.4f}</b>, {int((self.y_pred != self.y_true).sum()):,} mistakes</p>"
        )
        pairs = self.most_confused(5)
        if pairs.empty:
            return head + "<p>No mistakes.</p>"
        return (
            head
            + "<p>Most confused (true → predicted):</p>"
            + pairs.to_html(index=False, border=0, formatters={"rate": "{:.1%}".format})
        )
