"""The one path from an image to a model input: (H, W) float32 in [0, 1], ink = 1, background = 0.

Every image that becomes a model input goes through :func:`prepare_image` with an :class:`ImageConfig`:
the image-folder reader (training and ``glyphlab evaluate --dataset FOLDER``), ``glyphlab predict``,
``glyphlab serve`` (uploads and the drawing page) and :class:`~glyphlab.serving.predictor.Predictor`. The
config a model was trained with is written into its manifest (:class:`Preprocessing`), and predicting and
serving apply exactly that config, so a model never sees its images prepared one way in training and
another way in use.

The steps, each one a field of the config:

1. decode (any size; grayscale, RGB, CMYK, palette, alpha, 16-bit, float; the EXIF orientation applied),
   reduce to at most :data:`WORK_SIDE` pixels a side (the glyph ends up a few dozen pixels anyway);
2. ``polarity``: ``auto`` inverts dark ink on light paper, or say which it is;
3. ``clean`` (photos and scans): :func:`glyphlab.data.cleanup.find_glyph` flattens uneven light and shadows
   per colour channel, thresholds, removes rulings and box borders and keeps the one glyph (its strokes'
   grey levels), or says the picture is blank or holds several glyphs (:attr:`PreparedImage.others`);
   ``binary`` makes the strokes pure 0/1;
   without ``clean``, ``normalise_contrast``: the border's median becomes 0 and the brightest ink 1;
4. ``crop_to_ink``: cut to the bounding box of the pixels above :data:`INK_THRESHOLD`;
5. fit the result into a ``box`` x ``box`` square (``None``: the whole canvas), keeping the aspect ratio
   (``keep_aspect``), resampled with ``resample``, and place it in the middle of the ``canvas``;
6. ``centre_by_mass``: shift so the centre of mass is at the canvas centre (never pushing ink off it): by a
   bilinear sub-pixel shift to ((H - 1) / 2, (W - 1) / 2), or with ``whole_pixels`` (the serving default of
   models trained on MNIST-like arrays) by whole pixels to within half a pixel of (H / 2, W / 2), as MNIST did.

:meth:`ImageConfig.mnist_style` is the MNIST convention (LeCun et al.: 20 px box, centred by mass in 28x28)
and the default for image files; :meth:`ImageConfig.as_given` only resizes. An image whose ink is weaker
than :data:`MIN_CONTRAST` above its background holds no glyph: :attr:`PreparedImage.no_ink` says so.

The config is versioned (:data:`CONFIG_VERSION`): a config recorded without a version (glyphlab before the
``clean`` step) reads back with ``clean`` off, so a model saved then is served exactly as it was trained.

Decoding is defensive because bytes may come from strangers: the byte size is checked first, then the
header's pixel count *before* anything is decoded (a 20000x20000 PNG of a few KB costs nothing),
``verify()`` checks the file's structure, truncated files are errors, and only a known list of decoders
runs. Every failure is an :class:`ImageInputError` with a message a user can act on.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError
from scipy import ndimage

from glyphlab.errors import DataError

Polarity = Literal["auto", "dark-on-light", "light-on-dark"]
Resample = Literal["auto", "box", "bilinear", "bicubic", "lanczos", "nearest"]
POLARITIES: tuple[str, ...] = ("auto", "dark-on-light", "light-on-dark")
RESAMPLES: dict[str, Image.Resampling | None] = {
    "auto": None,  # box (area average) when shrinking, bilinear when enlarging
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
PRESETS = ("mnist", "as-given")

#: decoders allowed on uploaded bytes (the server)
UPLOAD_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
ALLOWED_FORMATS = UPLOAD_FORMATS  # the name the serving module used
#: decoders allowed on a user's own files (image folders, ``glyphlab predict``)
FILE_FORMATS: tuple[str, ...] = UPLOAD_FORMATS + ("TIFF",)
#: a pixel counts as ink for the bounding box above this value (after the contrast is normalised)
INK_THRESHOLD = 0.1
#: an image whose ink is weaker than this above the background holds no glyph
MIN_CONTRAST = 0.08
#: images are reduced to at most this side before the float work
WORK_SIDE = 512
#: the MNIST convention: the ink's longest side is 20 px of a 28 px canvas
MNIST_BOX, MNIST_CANVAS = 20, 28
#: MNIST's strokes are about this share of the glyph's longest side wide (2.2 px of the 20 px box, median)
MNIST_STROKE = 0.11
#: 2: the ``clean``, ``stroke`` and ``binary`` steps (a record without a version is 1: none, as it was then)
CONFIG_VERSION = 2
#: most scans (SOS markers) a JPEG may have: every scan of a progressive JPEG costs a pass over all of its
#: pixels, so thousands of empty 14-byte scans made a 60 KB upload cost 1.2 s of CPU; ordinary encoders
#: write 1 (baseline) to about 10 (progressive) scans (libjpeg-turbo's scan limit, ``djpeg -maxscans``)
MAX_JPEG_SCANS = 100
#: most markers walked while counting them (an ordinary JPEG has a few dozen; restart markers are not counted)
MAX_JPEG_MARKERS = 10_000


class ImageInputError(DataError):
    """An image cannot be used: not an image, damaged, too large, or of an unsupported kind."""


class ImageTooLargeError(ImageInputError):
    """The image has more bytes than allowed."""


class NoInkError(ImageInputError):
    """The image holds no ink at all (a blank canvas or page): there is nothing to classify."""


class SeveralGlyphsError(ImageInputError):
    """The image holds several separate glyphs (a whole number, a word): one label would be a guess."""


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 5_000_000
    max_pixels: int = 4_000_000


# -- the config ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageConfig:
    """How an image becomes a model input; recorded by the dataset, the run and the saved model's manifest."""

    canvas: tuple[int, int] = (MNIST_CANVAS, MNIST_CANVAS)
    polarity: Polarity = "auto"
    normalise_contrast: bool = True
    crop_to_ink: bool = True
    box: int | None = MNIST_BOX
    keep_aspect: bool = True
    centre_by_mass: bool = True
    resample: Resample = "auto"
    clean: bool = True
    binary: bool = False
    #: with ``clean``: strokes made this share of the glyph's longest side wide when far off (MNIST: 0.11)
    stroke: float | None = MNIST_STROKE
    #: ``centre_by_mass`` by whole pixels, as MNIST's own digits were (:func:`_centre_whole_pixels`): the serving
    #: default of models trained on MNIST-like arrays (:meth:`Preprocessing.arrays`); image folders, whose
    #: models learn from this path's own inputs, keep the sub-pixel shift (a few hundred images a class learn
    #: less from digits half a pixel apart)
    whole_pixels: bool = False

    def __post_init__(self) -> None:
        canvas = tuple(self.canvas) if isinstance(self.canvas, (list, tuple)) else (self.canvas, self.canvas)
        if len(canvas) != 2 or not all(_whole(c) and c > 0 for c in canvas):
            raise DataError(f"image canvas must be a positive size like 28 or [28, 28], got {self.canvas!r}")
        object.__setattr__(self, "canvas", (int(canvas[0]), int(canvas[1])))
        if self.polarity not in POLARITIES:
            raise DataError(f"polarity must be one of {', '.join(POLARITIES)}, got {self.polarity!r}")
        if self.resample not in RESAMPLES:
            raise DataError(f"resample must be one of {', '.join(RESAMPLES)}, got {self.resample!r}")
        if self.box is not None and not (_whole(self.box) and 0 < self.box <= max(self.canvas)):
            raise DataError(
                f"box must be a whole number of pixels in 1..{max(self.canvas)} (or none for the "
                f"whole canvas), got {self.box!r}"
            )
        if self.stroke is not None and not (
            isinstance(self.stroke, (int, float)) and not isinstance(self.stroke, bool) and 0.02 <= self.stroke <= 0.5
        ):
            raise DataError(
                f"stroke must be a share of the glyph's size in 0.02..0.5 (MNIST's strokes are 0.11) "
                f"or none, got {self.stroke!r}"
            )
        if not self.clean:  # the stroke is a step of the clean path only: one config, one way to write it
            object.__setattr__(self, "stroke", None)
        for name in (
            "normalise_contrast",
            "crop_to_ink",
            "keep_aspect",
            "centre_by_mass",
            "clean",
            "binary",
            "whole_pixels",
        ):
            if not isinstance(getattr(self, name), bool):
                raise DataError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def mnist_style(cls, canvas: Sequence[int] | int = (MNIST_CANVAS, MNIST_CANVAS), **changes: Any) -> ImageConfig:
        """The MNIST convention scaled to ``canvas``: ink box 20/28 of the side, centred by mass, strokes
        :data:`MNIST_STROKE` of the glyph wide. Canvases smaller than 16 px (the 8x8 ``digits``) are drawn edge
        to edge with their own bold strokes, so their ink fills the whole canvas and keeps its width; and
        not ``clean``: their strokes are a quarter of the glyph, as wide as any shadow the clean step drops."""
        side = min(_pair(canvas))
        box = round(side * MNIST_BOX / MNIST_CANVAS) if side >= 16 else None
        return replace(
            cls(
                canvas=_pair(canvas),
                box=box,
                centre_by_mass=box is not None,
                clean=box is not None,
                stroke=MNIST_STROKE if box is not None else None,
            ),
            **changes,
        )

    @classmethod
    def as_given(cls, canvas: Sequence[int] | int = (MNIST_CANVAS, MNIST_CANVAS), **changes: Any) -> ImageConfig:
        """Resize only: the whole image (polarity still detected) scaled to the canvas, nothing cropped or moved."""
        return replace(
            cls(
                canvas=_pair(canvas),
                normalise_contrast=False,
                crop_to_ink=False,
                box=None,
                centre_by_mass=False,
                clean=False,
            ),
            **changes,
        )

    @classmethod
    def from_options(cls, preset: str = "mnist", **options: Any) -> ImageConfig:
        """A preset (``mnist`` or ``as-given``) with some fields changed, as the image-folder reader takes them
        (``size`` is the canvas; ``invert=True`` means dark ink on light paper)."""
        if preset not in PRESETS:
            raise DataError(f"preprocess must be one of {', '.join(PRESETS)}, got {preset!r}")
        options = dict(options)
        if "size" in options:
            options["canvas"] = options.pop("size")
        invert = options.pop("invert", None)
        if invert is not None:
            options.setdefault("polarity", "dark-on-light" if invert else "light-on-dark")
        if "box" in options and isinstance(options["box"], str) and options["box"].lower() in ("none", "null", ""):
            options["box"] = None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise DataError(
                f"unknown image option(s) {', '.join(unknown)}; the image options are: "
                f"preprocess, size, {', '.join(sorted(known - {'canvas'}))}, invert"
            )
        canvas = options.pop("canvas", (MNIST_CANVAS, MNIST_CANVAS))
        make = cls.mnist_style if preset == "mnist" else cls.as_given
        return make(canvas, **options)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["canvas"] = list(self.canvas)
        d["version"] = CONFIG_VERSION
        return d

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ImageConfig:
        """A recorded config; one without ``version`` (recorded before the ``clean`` step) means version 1:
        ``clean``, ``stroke`` and ``binary`` off, whatever today's defaults are, so old models keep their steps."""
        if not isinstance(raw, Mapping):
            raise DataError(f"an image config must be a mapping, got {type(raw).__name__}")
        raw = dict(raw)
        version = raw.pop("version", 1)
        if version not in (1, CONFIG_VERSION):
            raise DataError(
                f"image config version {version!r} is not one this glyphlab reads (1 or "
                f"{CONFIG_VERSION}); a newer glyphlab saved it: upgrade glyphlab"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if version == 1:
            unknown += sorted({"clean", "binary", "stroke"} & set(raw))
        if unknown:
            raise DataError(f"unknown image config field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if version == 1:
            raw.update(clean=False, binary=False, stroke=None, whole_pixels=False)
        return cls(**{k: (tuple(v) if k == "canvas" else v) for k, v in raw.items()})

    def describe(self) -> str:
        """One line for people: what happens to an image."""
        h, w = self.canvas
        parts = [
            {
                "auto": "polarity detected",
                "dark-on-light": "dark ink on light paper (inverted)",
                "light-on-dark": "light ink on dark (not inverted)",
            }[self.polarity]
        ]
        if self.clean:
            parts.append("the glyph found (light flattened, rulings and specks removed)")
        if self.clean and self.stroke is not None:
            parts.append(f"strokes {self.stroke:g} of its size wide")
        if self.binary:
            parts.append("made binary")
        elif self.normalise_contrast and not self.clean:
            parts.append("contrast normalised")
        if self.crop_to_ink:
            parts.append("cropped to the ink")
        target = f"a {self.box} px box" if self.box is not None else "the whole canvas"
        parts.append(f"fitted into {target}" + ("" if self.keep_aspect else " (stretched)"))
        if self.centre_by_mass:
            parts.append("centred by mass" + (" (whole pixels)" if self.whole_pixels else ""))
        return ", ".join(parts) + f" in {h}x{w} ({self.resample} resampling)"


def _whole(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _pair(canvas: Sequence[int] | int) -> tuple[int, int]:
    if isinstance(canvas, (list, tuple)):
        if len(canvas) == 1:
            return (canvas[0], canvas[0])  # type: ignore[return-value]
        return tuple(canvas)  # type: ignore[return-value]
    return (canvas, canvas)  # type: ignore[return-value]


# -- what a model records --------------------------------------------------------------------------------------
TrainedOn = Literal["image files", "arrays"]


@dataclass(frozen=True)
class Preprocessing:
    """What a saved model records about its images (the manifest's ``preprocessing``).

    ``trained_on`` is ``"image files"`` (read with ``config``) or ``"arrays"`` (used as given, e.g. the MNIST
    IDX arrays); ``config`` is what ``glyphlab predict`` and ``glyphlab serve`` apply to image files and
    uploads for this model: the training config, or for array-trained models the MNIST-style serving
    default. ``note`` says how the record came to be (e.g. assumed for an old manifest).
    """

    trained_on: TrainedOn
    config: ImageConfig
    note: str = field(default="")

    @classmethod
    def files(cls, config: ImageConfig) -> Preprocessing:
        return cls("image files", config, "image files read with this config; predict and serve apply the same")

    @classmethod
    def arrays(cls, canvas: Sequence[int] | int) -> Preprocessing:
        return cls(
            "arrays",
            ImageConfig.mnist_style(canvas, whole_pixels=True),
            "trained on arrays as given; image files and uploads get the MNIST-style serving default",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"trained_on": self.trained_on, "image_config": self.config.to_dict(), "note": self.note}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Preprocessing:
        if not isinstance(raw, Mapping) or raw.get("trained_on") not in ("image files", "arrays"):
            raise DataError(f"a preprocessing record needs trained_on 'image files' or 'arrays', got {raw!r}")
        recorded = raw.get("image_config") or {}
        config = ImageConfig.from_dict(recorded)
        if raw["trained_on"] == "arrays" and config.clean and "whole_pixels" not in recorded:
            # a version-2 serving default recorded before the field: MNIST-like arrays are centred by whole
            # pixels (version 1's records keep their steps bit for bit)
            config = replace(config, whole_pixels=True)
        return cls(raw["trained_on"], config, str(raw.get("note", "")))

    @classmethod
    def of_dataset(cls, meta: Mapping[str, Any], canvas: Sequence[int]) -> Preprocessing:
        """A dataset's record (``meta["preprocessing"]``, written by the image-folder reader), else arrays."""
        raw = meta.get("preprocessing")
        return cls.from_dict(raw) if raw else cls.arrays(tuple(canvas))


# -- decoding --------------------------------------------------------------------------------------------------
def decode_image(
    data: bytes, limits: DecodeLimits = DecodeLimits(), formats: Sequence[str] = UPLOAD_FORMATS
) -> Image.Image:
    """Decode untrusted bytes into a fully loaded PIL image, or raise :class:`ImageInputError`."""
    if not data:
        raise ImageInputError("the image is empty (0 bytes): send a PNG or JPEG image")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"the image has {len(data):,} bytes, more than the limit of {limits.max_bytes:,}")
    check_jpeg_scans(data)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone in this process relaxed Pillow globally; we do not
        raise ImageInputError("refusing to decode: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in this process")
    fmt = "image"
    with warnings.catch_warnings():
        # Pillow's own bomb check warns (and errors at 2x its global limit); ours is stricter and runs first
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=list(formats)) as probe:
                fmt = probe.format or fmt
                _check_size(probe.size, limits)
                probe.verify()
            im = Image.open(io.BytesIO(data), formats=list(formats))
            _check_size(im.size, limits)
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF/WebP: the first frame
            im.load()
        except ImageInputError:
            raise
        except UnidentifiedImageError:
            raise ImageInputError(
                f"not a readable image: not an image, or not one decoded here (allowed: {', '.join(formats)})"
            ) from None
        except Image.DecompressionBombError as exc:
            raise ImageInputError(
                f"the image header claims more pixels than are decoded here (limit "
                f"{limits.max_pixels:,}; a possible decompression bomb); refused ({exc})"
            ) from None
        except Exception as exc:  # decoders of damaged files raise many types (OSError, SyntaxError, struct.error...)
            msg = str(exc) or type(exc).__name__
            if "truncated" in msg.lower() or isinstance(exc, EOFError):
                raise ImageInputError(f"the image is truncated or damaged: {msg}") from None
            raise ImageInputError(f"the {fmt} file is damaged: {msg}") from None
    return im


#: the next marker of a JPEG: 0xFF and a code that is neither a stuffed 0x00, a restart marker nor a fill byte
#: (one 0xFF, not a run: a search with ``\xff+`` would be quadratic in a long run of fill bytes)
_JPEG_MARKER = re.compile(rb"\xff([^\x00\xd0-\xd7\xff])")


def count_jpeg_scans(data: bytes, stop_above: int = MAX_JPEG_SCANS, max_markers: int = MAX_JPEG_MARKERS) -> int:
    """How many scans (SOS markers) the JPEG ``data`` has, counting stops once above ``stop_above``; 0 if it is
    not a JPEG. Marker segments are skipped by their length and entropy-coded data up to its next marker, as a
    decoder reads them, so bytes 0xFF 0xDA inside an EXIF thumbnail or a table are not counted. More than
    ``max_markers`` markers (millions of 2-byte ones would make this walk slow) is an :class:`ImageInputError`."""
    if not data.startswith(b"\xff\xd8"):
        return 0
    scans, markers, pos, end = 0, 0, 2, len(data)
    while scans <= stop_above:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            break
        markers += 1
        if markers > max_markers:
            raise ImageInputError(
                f"the JPEG has more than {max_markers:,} markers; ordinary JPEGs have a few "
                "dozen (refused before decoding)"
            )
        code, pos = found.group(1)[0], found.end()
        if code == 0xD9:  # end of image
            break
        if code == 0x01:  # TEM: no length
            continue
        if code == 0xDA:
            scans += 1
        if pos + 2 > end:
            break
        pos += max(2, int.from_bytes(data[pos : pos + 2], "big"))
    return scans


def check_jpeg_scans(data: bytes, max_scans: int = MAX_JPEG_SCANS) -> None:
    """Refuse a JPEG with more than ``max_scans`` scans before it is decoded (each one is a pass over every pixel)."""
    if not data.startswith(b"\xff\xd8") or data.count(b"\xff\xda") <= max_scans:
        return  # every scan's marker is the bytes 0xFF 0xDA, so this count (at C speed) bounds the scans
    if count_jpeg_scans(data, max_scans) > max_scans:
        raise ImageInputError(
            f"the JPEG has more than {max_scans} scans (SOS markers); ordinary JPEGs have 1 to "
            "about 10, and each costs a pass over every pixel (a possible decompression bomb); "
            "refused before decoding"
        )


def read_image_file(path: str | Path, limits: DecodeLimits, formats: Sequence[str] = FILE_FORMATS) -> Image.Image:
    """A user's image file, decoded with the same checks as an upload; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageTooLargeError(
                f"{path}: the file has {size:,} bytes, more than the limit of {limits.max_bytes:,}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageInputError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return decode_image(data, limits, formats)
    except ImageInputError as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _check_size(size: tuple[int, int], limits: DecodeLimits) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageInputError(f"the image has no pixels ({w}x{h})")
    if w * h > limits.max_pixels:
        raise ImageInputError(
            f"the image is {w}x{h} = {w * h:,} pixels, more than the limit of {limits.max_pixels:,} (a possible "
            "decompression bomb); use a smaller image (a glyph needs only a few hundred pixels a side)"
        )


# -- grayscale -------------------------------------------------------------------------------------------------
def to_gray(im: Image.Image) -> np.ndarray:
    """Grayscale float32 (H, W) in [0, 1] as stored (0 = black), whatever the mode; EXIF orientation applied.

    16-bit images are divided by 65535; a transparent background is put behind the strokes in the opposite
    of their own colour (a browser canvas exports black strokes on transparent pixels).
    """
    return to_pixels(im, colour=False)


def to_pixels(im: Image.Image, colour: bool = True, eight_bit: bool = False) -> np.ndarray:
    """:func:`to_gray`, but colour images (RGB, CMYK, palette without transparency) as (H, W, 3) float32
    when ``colour``: a blue pen on cream paper is told from the paper by its channels, not its luminance.
    ``eight_bit``: 8-bit pictures (most) as their uint8 array, unconverted (the clean step works in 8 bits)."""
    try:  # phone photos; asked first, since exif_transpose copies every picture it does not turn
        if im.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            im = ImageOps.exif_transpose(im) or im
    except Exception:  # a broken EXIF block is not worth refusing the image for
        pass
    if max(im.size) > WORK_SIDE:
        im = im.copy()
        im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    mode = im.mode
    if mode.startswith("I;16"):
        gray = np.asarray(im, dtype=np.float32) / 65535.0
    elif mode in ("I", "F"):
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 1.0
        gray = arr / (65535.0 if top > 255 else 255.0 if top > 1 else 1.0)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        arr = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = arr[..., 3]
        lum = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        if alpha.min() < 0.99:
            weight = alpha.sum()
            ink_lum = float((lum * alpha).sum() / weight) if weight > 0 else 0.0
            backdrop = 0.0 if ink_lum > 0.5 else 1.0
            gray = lum * alpha + backdrop * (1.0 - alpha)
        else:
            gray = lum
    else:
        if mode not in ("L", "RGB", "1", "P", "CMYK"):
            try:
                im = im.convert("RGB")
            except (ValueError, OSError) as exc:
                raise ImageInputError(f"images in mode {mode} are not supported: {exc}") from None
        if colour and im.mode != "L" and mode not in ("L", "1"):
            rgb = _u8_pixels(im if im.mode == "RGB" else im.convert("RGB"))
            if rgb.ndim != 3 or rgb.size == 0:
                raise ImageInputError(f"the image has no pixels (shape {rgb.shape})")
            return rgb if eight_bit else rgb.astype(np.float32) / 255.0
        if eight_bit and mode == "L" and im.width and im.height:  # the clean step's 8 bits, as decoded
            return _u8_pixels(im)
        gray = np.asarray(im if mode == "L" else im.convert("L"))
        if eight_bit and gray.ndim == 2 and gray.size:
            return gray
        gray = gray.astype(np.float32) / 255.0
    if gray.ndim != 2 or gray.size == 0:
        raise ImageInputError(f"the image has no pixels (shape {gray.shape})")
    return gray.clip(0.0, 1.0).astype(np.float32, copy=False)


def _u8_pixels(im: Image.Image) -> np.ndarray:
    """An 8-bit L or RGB image's pixels, (H, W) or (H, W, 3) uint8 (read-only), as ``np.asarray(im)`` gives them:
    from its raw bytes, at a third to half of the array interface's cost on an upload's size (the clean step's
    input; the version-1 path keeps ``np.asarray``)."""
    arr = np.frombuffer(im.tobytes(), dtype=np.uint8)
    return arr.reshape((im.height, im.width) if im.mode == "L" else (im.height, im.width, 3))


def border(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D array without NaN, bit for bit, at a fraction of its cost.

    np.median partitions and then averages the middle element(s) through np.mean, in the array's dtype;
    this does the same arithmetic without its dispatch (a server prepares every upload with it twice).
    """
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return float(np.true_divide(np.add(part[k - 1], part[k]), 2))


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """``scipy.ndimage.center_of_mass`` of a 2-D image, bit for bit (the same float64 products and sums),
    with the coordinate grids made once per shape instead of per call."""
    rows, cols = _grids(image.shape)
    total = image.sum()
    return float((image * rows).sum() / total), float((image * cols).sum() / total)


@lru_cache(maxsize=16)
def _grids(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return rows.astype(float), cols.astype(float)


# -- to the model's input --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedImage:
    pixels: np.ndarray  #: (H, W) float32 in [0, 1], ink = 1
    inverted: bool  #: dark ink on light paper was inverted
    no_ink: bool  #: nothing stands out from the background: a blank canvas or page
    others: int = 0  #: separate glyphs beside the one prepared (``clean`` configs): the picture holds several


SEVERAL_GLYPHS = (
    "several glyphs: the picture holds separate characters side by side ({n} or more), and this model "
    "reads one; crop it to one character, or read the whole string with `glyphlab read` (gl.read)"
)


def prepare_image(im: Image.Image, config: ImageConfig) -> PreparedImage:
    """A decoded image -> the model input for ``config``."""
    if config.clean:
        pixels = to_pixels(im, colour=True, eight_bit=True)
        if pixels.dtype == np.uint8:  # 8 bits, as most pictures are: straight to the clean step
            return _prepare_clean(pixels, config, None)
        return prepare_gray(pixels, config)
    return prepare_gray(to_gray(im), config)


def prepare_gray(gray: np.ndarray, config: ImageConfig, inverted: bool | None = None) -> PreparedImage:
    """A grayscale (H, W) array in [0, 1] as stored (0 = black) -> the model input for ``config``.

    With ``config.clean`` the array may also be (H, W, 3) colour. ``inverted`` overrides the config's
    polarity (the JSON pixels of the API are ink = 1 by contract).
    """
    gray = np.asarray(gray, dtype=np.float32).clip(0.0, 1.0)  # a new array: NaN can be zeroed in place
    nan = np.isnan(gray)
    if nan.any():
        gray[nan] = 0.0
    if config.clean and gray.size and (gray.ndim == 2 or (gray.ndim == 3 and gray.shape[2] == 3)):
        return _prepare_clean(gray, config, inverted)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageInputError(f"expected a 2-D image, got shape {gray.shape}")
    if inverted is None:
        inverted = median(border(gray)) > 0.5 if config.polarity == "auto" else config.polarity == "dark-on-light"
    ink = 1.0 - gray if inverted else gray
    background = median(border(ink))
    peak = float(ink.max())
    no_ink = peak - background < MIN_CONTRAST
    if config.normalise_contrast:
        ink = (
            np.zeros_like(ink)
            if no_ink
            else ((ink - background) / (peak - background)).clip(0.0, 1.0).astype(np.float32, copy=False)
        )
    return PreparedImage(_fit(ink, config), bool(inverted), bool(no_ink))


def _prepare_clean(pixels: np.ndarray, config: ImageConfig, inverted: bool | None) -> PreparedImage:
    """The ``clean`` path: the one glyph found in a photo or scan, then fitted like any other ink."""
    from glyphlab.data.cleanup import find_glyph, glyph_ink, normalise_stroke  # OpenCV: the first clean picture

    if inverted is None and config.polarity != "auto":
        inverted = config.polarity == "dark-on-light"
    glyph = find_glyph(pixels, ink_dark=inverted)
    inverted = glyph.ink_dark
    if glyph.no_ink:
        return PreparedImage(np.zeros(config.canvas, dtype=np.float32), bool(inverted), True)
    if config.crop_to_ink and glyph.box is not None:  # the same crop, from fewer pixels
        ink = glyph_ink(glyph, config.stroke)
    else:
        ink = glyph.ink
        if config.stroke is not None and glyph.box is not None:
            ink = normalise_stroke(ink, glyph.box, config.stroke)
    pixels = _fit(ink, config)
    if config.binary:  # last: resizing and centring make grey edges again
        pixels = (pixels >= 0.5).astype(np.float32)
    return PreparedImage(pixels, bool(inverted), False, glyph.others)


def has_ink(pixels: np.ndarray) -> bool:
    """Whether an ink = 1 array holds a glyph: its brightest pixel stands out from its border."""
    arr = np.asarray(pixels, dtype=np.float32)
    return bool(arr.size) and float(arr.max()) - median(border(arr)) >= MIN_CONTRAST


def _fit(ink: np.ndarray, config: ImageConfig) -> np.ndarray:
    H, W = config.canvas
    region = ink
    if config.crop_to_ink:
        mask = ink > INK_THRESHOLD
        rows = np.flatnonzero(mask.any(axis=1))
        if not rows.size:
            return np.zeros((H, W), dtype=np.float32)
        cols = np.flatnonzero(mask.any(axis=0))
        region = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    rh, rw = region.shape
    box_h, box_w = (min(H, config.box), min(W, config.box)) if config.box is not None else (H, W)
    if config.keep_aspect:
        scale = min(box_h / rh, box_w / rw)
        nh, nw = max(1, min(H, round(rh * scale))), max(1, min(W, round(rw * scale)))
    else:
        nh, nw = box_h, box_w
    method = RESAMPLES[config.resample]
    if method is None:
        method = Image.Resampling.BOX if nh <= rh and nw <= rw else Image.Resampling.BILINEAR
    resized = region if (nh, nw) == (rh, rw) else _resize_f32(region, (nw, nh), method)
    out = np.zeros((H, W), dtype=np.float32)
    top, left = (H - nh) // 2, (W - nw) // 2
    out[top : top + nh, left : left + nw] = resized.clip(0.0, 1.0)
    if config.centre_by_mass and out.sum() > 0:
        centre = _centre_whole_pixels if config.whole_pixels else _centre_subpixel
        out = centre(out, (top, left, nh, nw))
    if config.normalise_contrast:
        peak = float(out.max())
        if peak > 0:
            out = out / peak
    return out.clip(0.0, 1.0).astype(np.float32, copy=False)


def _centre_subpixel(out: np.ndarray, placed: tuple[int, int, int, int]) -> np.ndarray:
    """The centring of image folders and of version 1: a sub-pixel, bilinear shift putting the centre of mass at
    the canvas's middle, (H - 1) / 2."""
    H, W = out.shape
    top, left, nh, nw = placed
    cy, cx = centre_of_mass(out)
    # never shift ink off the canvas: limit the shift to the free margin on each side
    dy = float(min(max((H - 1) / 2.0 - cy, -top), H - top - nh))
    dx = float(min(max((W - 1) / 2.0 - cx, -left), W - left - nw))
    return ndimage.shift(out, (dy, dx), order=1, mode="constant", cval=0.0)


def _centre_whole_pixels(out: np.ndarray, placed: tuple[int, int, int, int]) -> np.ndarray:
    """MNIST's own centring, exactly: a shift by whole pixels that puts the centre of mass within half a pixel
    of pixel (H / 2, W / 2) -- every MNIST digit's lies within 0.5 of (14, 14) in 28x28, not at 13.5, and a
    bilinear sub-pixel shift would blur the strokes a model trained on MNIST never saw blurred. ``placed``:
    the ink's (top, left, height, width) on the canvas; it is never pushed off the canvas."""
    H, W = out.shape
    top, left, nh, nw = placed
    cy, cx = centre_of_mass(out)
    dy = int(min(max(np.floor(H / 2.0 - cy + 0.5), -top), H - top - nh))
    dx = int(min(max(np.floor(W / 2.0 - cx + 0.5), -left), W - left - nw))
    if dy == 0 and dx == 0:
        return out
    shifted = np.zeros_like(out)
    shifted[top + dy : top + dy + nh, left + dx : left + dx + nw] = out[top : top + nh, left : left + nw]
    return shifted


def _resize_f32(region: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """A float32 (H, W) array resized by Pillow to ``size`` (W, H), through Pillow's raw "F" buffer both ways
    (``fromarray``/``asarray`` go through the array interface and cost as much as the resize itself)."""
    src = np.ascontiguousarray(region, dtype=np.float32)
    im = Image.frombuffer("F", (src.shape[1], src.shape[0]), src, "raw", "F", 0, 1).resize(size, method)
    return np.frombuffer(im.tobytes("raw", "F"), dtype=np.float32).reshape(size[1], size[0])


def prepare_bytes(
    data: bytes, config: ImageConfig, limits: DecodeLimits = DecodeLimits(), formats: Sequence[str] = UPLOAD_FORMATS
) -> PreparedImage:
    """Untrusted image bytes -> the model input, or :class:`ImageInputError`."""
    im = decode_image(data, limits, formats)
    try:
        return prepare_image(im, config)
    finally:
        im.close()


def prepare_file(path: str | Path, config: ImageConfig, limits: DecodeLimits) -> PreparedImage:
    """A user's image file -> the model input; errors name the file."""
    path = Path(path)
    im = read_image_file(path, limits)
    try:
        return prepare_image(im, config)
    except ImageInputError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    finally:
        im.close()


def prepare_pixels(pixels: np.ndarray, config: ImageConfig) -> PreparedImage:
    """A 2-D array already in [0, 1] with ink = 1 (the API's JSON pixels): kept as is when it has the canvas
    shape (it is a model input already), else prepared with ``config`` (its polarity known: ink = 1)."""
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ImageInputError(f"expected a 2-D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ImageInputError("the pixels contain NaN or infinite values")
    if tuple(arr.shape) == tuple(config.canvas):
        arr = np.clip(arr, 0.0, 1.0)
        return PreparedImage(arr, False, not has_ink(arr))
    return prepare_gray(arr, config, inverted=False)
