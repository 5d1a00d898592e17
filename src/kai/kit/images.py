"""Uploaded images: what KAI accepts, decoded safely, and the stripped WebP derivatives it keeps."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Final, Literal

import pillow_heif
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from kai.kit.errors import KaiError

# Phones shoot HEIC; registering makes Pillow open it everywhere in the process, not only here.
pillow_heif.register_heif_opener()

ImageFormat = Literal["jpeg", "png", "webp", "heic"]

CONTENT_TYPES: Final[dict[ImageFormat, str]] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "heic": "image/heic",
}
# The file extension a stored original of each format gets.
EXTENSIONS: Final[dict[ImageFormat, str]] = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "heic": "heic",
}

# Longer side, in pixels, of the derivatives kept next to each original.
PROCESSED_SIDE = 1024
THUMBNAIL_SIDE = 256

_ACCEPTED = "KAI accepts JPEG, PNG, WebP and HEIC images."
_CORRUPT = "The image data is truncated or corrupt."
_NO_END = (
    "The image data is truncated or corrupt: its end cannot be found (it may be cut short, or "
    "have other data inside it). Save the picture again and upload that."
)

_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# How far into the file to look for the markers of text formats (SVG, HTML, XML).
_TEXT_SNIFF_BYTES = 4096

# What Pillow raises for a file it cannot read; anything else is a bug worth seeing.
_UNREADABLE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

_PILLOW_FORMATS: Final[dict[ImageFormat, frozenset[str]]] = {
    # A JPEG carrying several pictures (many phones add a depth map) opens as MPO.
    "jpeg": frozenset({"JPEG", "MPO"}),
    "png": frozenset({"PNG"}),
    "webp": frozenset({"WEBP"}),
    "heic": frozenset({"HEIF"}),
}

# The plugins themselves, not Image.open: Image.open applies Pillow's process-wide
# MAX_IMAGE_PIXELS check (a warning, or an error at twice the limit) before the caller can look
# at the size. Constructing the plugin reads only the header, so the limits here decide.
_OPENERS: Final[dict[ImageFormat, Callable[[IO[bytes], str], ImageFile.ImageFile]]] = {
    "jpeg": JpegImagePlugin.jpeg_factory,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "heic": pillow_heif.HeifImageFile,
}

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose).
_UPRIGHT: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDEWAYS = frozenset({5, 6, 7, 8})

_SRGB = ImageCms.createProfile("sRGB")
# Modes an ICC transform can take in, and those that keep an alpha channel through it.
_ICC_MODES = frozenset({"L", "RGB", "RGBA", "CMYK"})


class ImageRejected(KaiError):
    status, type, title = 422, "image-rejected", "The file is not an image KAI accepts"


class ImageTooLarge(KaiError):
    status, type, title = 413, "image-too-large", "The image is too large"


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may be: bytes on the wire, and pixels once decoded."""

    max_bytes: int = 25 * 1024 * 1024
    # width * height; a decompression bomb is refused from its header, before decoding.
    max_pixels: int = 50_000_000
    max_side: int = 20_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageLimits.{name} must be positive")


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class InspectedImage:
    """What an accepted upload is, found from its content alone."""

    format: ImageFormat
    content_type: str
    # As displayed: after the EXIF orientation is applied.
    width: int
    height: int
    # Hex digest of the bytes as uploaded.
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ImageHeader:
    """What an upload's header says it is, nothing decoded."""

    format: ImageFormat
    # As stored: before any EXIF orientation (reading that may mean reading the whole file).
    width: int
    height: int


@dataclass(frozen=True)
class Derivative:
    """A re-encoded copy of an image: WebP, sRGB, upright, and without any metadata."""

    data: bytes
    content_type: str
    width: int
    height: int


def accept_upload(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[bytes, InspectedImage]:
    """The bytes of an upload worth keeping (`without_trailer`) and what they are."""
    kept = without_trailer(data)
    return kept, inspect_image(kept, limits)


def without_trailer(data: bytes) -> bytes:
    """`data` up to the end of its image (JPEG EOI, PNG IEND, the RIFF or ISO-media boxes'
    end): what follows is no part of the picture, and may be anything (a zip appended makes
    a JPEG that is also an archive; phones append motion-photo videos), so it is not kept.
    A file whose structure cannot be followed to its end is refused (ImageRejected): a
    decoder may still read it, so what follows its picture could not be told apart and cut
    off. Anything but an image KAI accepts is refused as `inspect_image` refuses it."""
    image_format = _sniff(data)
    end = _IMAGE_ENDS[image_format](data)
    if end is None:
        raise ImageRejected(_NO_END)
    return data[:end]


def _jpeg_end(data: bytes) -> int | None:
    """Where a JPEG's first picture ends: just after its EOI marker, found by walking the
    segments (an EXIF thumbnail has an EOI of its own, inside its segment)."""
    size, position = len(data), 2
    while position < size:
        if data[position] != 0xFF:
            return None
        while position < size and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= size:
            return None
        marker = data[position]
        position += 1
        if marker == 0xD9:  # EOI
            return position
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            continue
        if position + 2 > size:
            return None
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2:
            return None
        position += length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            while True:
                position = data.find(b"\xff", position)
                if position < 0 or position + 1 >= size:
                    return None
                following = data[position + 1]
                if following == 0xFF:
                    position += 1
                elif following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffing, restarts
                    position += 2
                else:
                    break
    return None


def _png_end(data: bytes) -> int | None:
    """Just after the IEND chunk."""
    size, position = len(data), len(_PNG_SIGNATURE)
    while position + 12 <= size:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        position += 12 + length
        if kind == b"IEND":
            return position if position <= size else None
    return None


def _riff_end(data: bytes) -> int | None:
    """The end the RIFF header gives (a WebP is one RIFF chunk)."""
    end = 8 + int.from_bytes(data[4:8], "little")
    return end if end <= len(data) else None


def _iso_media_end(data: bytes) -> int | None:
    """The end of the last whole top-level box (HEIC is boxes to the end of the file)."""
    size, position = len(data), 0
    while position + 8 <= size:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if not all(0x20 <= byte < 0x7F for byte in kind):
            break
        if length == 0:  # the box runs to the end of the file
            return size
        if length == 1:  # a 64-bit size follows the type
            if position + 16 > size:
                break
            length = int.from_bytes(data[position + 8 : position + 16], "big")
        if length < 8 or position + length > size:
            break
        position += length
    return position or None


_IMAGE_ENDS: Final[dict[ImageFormat, Callable[[bytes], int | None]]] = {
    "jpeg": _jpeg_end,
    "png": _png_end,
    "webp": _riff_end,
    "heic": _iso_media_end,
}


def inspect_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> InspectedImage:
    """Validate `data` by content and describe it; raise ImageRejected or ImageTooLarge."""
    with _loaded(data, limits) as (image_format, image, _):
        width, height = image.size
        if _orientation(image) in _SIDEWAYS:
            width, height = height, width
    return InspectedImage(
        format=image_format,
        content_type=CONTENT_TYPES[image_format],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )


def read_header(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> ImageHeader:
    """The format `data` has by content and the size its header gives, both checked against
    `limits`; ImageRejected or ImageTooLarge otherwise. No pixel is decoded (a fraction of a
    millisecond, whatever the size): a file whose pixel data is broken passes here, and is
    refused where it is decoded."""
    with _opened(data, limits) as (image_format, image):
        width, height = image.size
    return ImageHeader(format=image_format, width=width, height=height)


def decode_image(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, max_side: int | None = None
) -> Image.Image:
    """The image as upright sRGB RGB pixels, with no metadata; validated as inspect_image does.

    With `max_side`, a JPEG is decoded at a reduced DCT scale that keeps both sides at least
    `max_side` (or as they are, if smaller); the image is not resized beyond that.
    """
    return decode_upload(data, limits, max_side=max_side)[1]


def decode_upload(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, max_side: int | None = None
) -> tuple[InspectedImage, Image.Image]:
    """What `inspect_image` finds and what `decode_image` returns, from one decode: an upload
    that is only looked at (recognized) need not be decoded twice, nor at full size."""
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be positive")
    with _loaded(data, limits, draft_side=max_side) as (image_format, image, full_size):
        orientation = _orientation(image)
        try:
            rgb = _to_srgb_rgb(image)
        except _UNREADABLE:
            raise ImageRejected(_CORRUPT) from None
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    # EXIF, XMP and the ICC profile describe the upload, not these pixels: keep none of them.
    rgb.info = {}
    width, height = full_size
    if orientation in _SIDEWAYS:
        width, height = height, width
    inspected = InspectedImage(
        format=image_format,
        content_type=CONTENT_TYPES[image_format],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )
    return inspected, rgb


def make_derivative(
    data: bytes, *, max_side: int, quality: int = 82, limits: ImageLimits = DEFAULT_LIMITS
) -> Derivative:
    """A WebP at most `max_side` on its longer side (never upscaled), carrying no metadata."""
    if max_side < 1:
        raise ValueError("max_side must be positive")
    if not 0 <= quality <= 100:
        raise ValueError("quality must be between 0 and 100")
    image = decode_image(data, limits, max_side=max_side)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    # Metadata is written only when passed to save; none is, so no EXIF (GPS), XMP or ICC.
    image.save(buffer, format="WEBP", quality=quality, method=4)
    return Derivative(
        data=buffer.getvalue(),
        content_type=CONTENT_TYPES["webp"],
        width=image.width,
        height=image.height,
    )


@contextmanager
def _opened(data: bytes, limits: ImageLimits) -> Iterator[tuple[ImageFormat, ImageFile.ImageFile]]:
    """`data` opened (its header read, no pixel decoded) after every check of its size, its
    format by content and its dimensions; closed on leaving."""
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"The file is {len(data)} bytes; the limit is {limits.max_bytes} bytes."
        )
    image_format = _sniff(data)
    try:
        image = _OPENERS[image_format](io.BytesIO(data), "")
    except _UNREADABLE:
        raise ImageRejected(_CORRUPT) from None
    try:
        if image.format not in _PILLOW_FORMATS[image_format]:
            raise ImageRejected(
                f"The file starts like {image_format.upper()} but reads as {image.format}."
            )
        _check_dimensions(image.size, limits)
        yield image_format, image
    finally:
        image.close()


@contextmanager
def _loaded(
    data: bytes, limits: ImageLimits, *, draft_side: int | None = None
) -> Iterator[tuple[ImageFormat, ImageFile.ImageFile, tuple[int, int]]]:
    """The fully decoded first frame of `data`, after every check, and its size as stored
    (before any DCT scaling); closed on leaving."""
    with _opened(data, limits) as (image_format, image):
        full_size = image.size
        if draft_side is not None and image_format == "jpeg":
            image.draft(None, (draft_side, draft_side))
        try:
            # The full decode: a file cut short fails here rather than as grey pixels later,
            # because ImageFile.LOAD_TRUNCATED_IMAGES is left False.
            image.load()
        except _UNREADABLE:
            raise ImageRejected(_CORRUPT) from None
        yield image_format, image, full_size


def _check_dimensions(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected(f"The image is {width} x {height} pixels, which is empty.")
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise ImageTooLarge(
            f"The image is {width} x {height} pixels; the limit is {limits.max_pixels} pixels"
            f" and {limits.max_side} pixels on a side."
        )


def _sniff(data: bytes) -> ImageFormat:
    """The accepted format `data` starts like; otherwise ImageRejected saying what it is."""
    if not data:
        raise ImageRejected("The file is empty.")
    if data.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    brands = _iso_media_brands(data)
    if brands is not None:
        if brands & _AVIF_BRANDS:
            raise ImageRejected(f"This is an AVIF image. {_ACCEPTED}")
        if brands & _HEIF_BRANDS:
            return "heic"
        raise ImageRejected(f"This is a video or other ISO media file, not an image. {_ACCEPTED}")
    raise ImageRejected(_describe_other(data))


def _iso_media_brands(data: bytes) -> frozenset[bytes] | None:
    """The major and compatible brands of an ISO BMFF `ftyp` box at the start, if there is one."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[:4], "big")
    if box_size < 16:
        return None
    box = data[:box_size]
    # Major brand at 8, minor version at 12, then compatible brands of four bytes each.
    compatible = (box[offset : offset + 4] for offset in range(16, len(box) - 3, 4))
    return frozenset({box[8:12], *compatible})


def _describe_other(data: bytes) -> str:
    """What a refused file looks like, as far as its first bytes tell."""
    if data.startswith(b"%PDF-"):
        return "This is a PDF document, not an image."
    if data.startswith((b"GIF87a", b"GIF89a")):
        return f"This is a GIF image. {_ACCEPTED}"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return f"This is a TIFF image. {_ACCEPTED}"
    if data.startswith(b"BM") and data[6:10] == b"\x00\x00\x00\x00":
        return f"This is a BMP image. {_ACCEPTED}"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return f"This is a JPEG XL image. {_ACCEPTED}"
    if data.startswith(b"PK\x03\x04"):
        return "This is a ZIP archive (or a document stored as one), not an image."
    if data.startswith(b"\x1f\x8b"):
        return "This is a gzip-compressed file (perhaps a compressed SVG), not an image."
    head = data[:_TEXT_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(b"<"):
        if b"<svg" in head:
            # SVG is XML that can carry scripts and links; it is never accepted as an image.
            return "This is an SVG drawing, which KAI does not accept: it can carry scripts."
        if b"<html" in head or head.startswith(b"<!doctype html"):
            return "This is an HTML page, not an image."
        return "This is an XML or other markup document, not an image."
    return f"The file is not a JPEG, PNG, WebP or HEIC image. {_ACCEPTED}"


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8); 1 when absent or unreadable."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _UNREADABLE:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_srgb_rgb(image: Image.Image) -> Image.Image:
    """A new RGB image in sRGB, transparency flattened onto white."""
    icc_profile = image.info.get("icc_profile")
    converted = _icc_ready(image)
    if icc_profile and converted.mode in _ICC_MODES:
        converted = _to_srgb(converted, icc_profile)
    if converted.mode == "RGBA":
        flat = Image.new("RGB", converted.size, "white")
        flat.paste(converted, mask=converted.getchannel("A"))
        return flat
    # convert() copies even when the mode is already RGB, so the caller owns the result.
    return converted.convert("RGB")


def _icc_ready(image: Image.Image) -> Image.Image:
    """The image in L, RGB, RGBA or CMYK, the modes an embedded profile can describe."""
    mode = image.mode
    if mode in _ICC_MODES:
        return image
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        return image.convert("RGBA")
    if mode.startswith("I"):
        # 16-bit greyscale: scale to 8 bits, as convert() alone would clip everything above 255.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def _to_srgb(image: Image.Image, icc_profile: bytes) -> Image.Image:
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken profile, or one for another colour model, should not make a photo unusable:
        # its pixels are then taken as sRGB, which is what most software would show.
        return image
    return converted if converted is not None else image
