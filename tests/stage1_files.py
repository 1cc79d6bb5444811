"""Builders of bad and unusual image files for the stage-1 tests, with the outcome each expects."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageFilter

from curation.demo.photos import colour_photos, gray_photos

# name -> ("ingest", error reason) | ("clean", status, reason or None)
Expected = dict[str, tuple]


def _photo(index: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    photos = colour_photos()
    return (
        Image.open(photos[index % len(photos)])
        .convert("RGB")
        .resize(size, Image.Resampling.LANCZOS)
    )


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=kw.pop("quality", 92), **kw)
    return buf.getvalue()


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims width x height (a decompression bomb header)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def build_bad_pool(folder: Path) -> Expected:
    """Write >= 20 kinds of bad or unusual files; return what stage 1 should say about each."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: Expected = {}

    def write(name: str, data: bytes, outcome: tuple) -> None:
        (folder / name).write_bytes(data)
        expected[name] = outcome

    good = _jpeg_bytes(_photo(0))
    write("truncated.jpg", good[: len(good) // 2], ("clean", "reject", "truncated"))
    write("zero_bytes.jpg", b"", ("clean", "reject", "empty_file"))
    write(
        "text_named.jpg", b"just some text, not a JPEG\n" * 20, ("clean", "reject", "not_an_image")
    )
    write(
        "bomb_60000.png",
        _png_with_declared_size(60000, 60000),
        ("clean", "reject", "decompression_bomb"),
    )
    write(
        "heic_named.jpg",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        ("clean", "reject", "unsupported_format"),
    )
    ico = io.BytesIO()
    _photo(1, (64, 64)).save(ico, format="ICO")
    write("icon_named.png", ico.getvalue(), ("clean", "reject", "unsupported_format"))
    corrupt = bytearray(_jpeg_bytes(_photo(2)))
    corrupt[600:] = os.urandom(len(corrupt) - 600)
    write("corrupt_header.jpg", bytes(corrupt), ("clean", "reject", "corrupt"))

    write("cmyk.jpg", _jpeg_bytes(_photo(3).convert("CMYK")), ("clean", "pass", None))
    rgb16 = (np.asarray(_photo(4), dtype=np.uint16) * 257)[..., ::-1]  # cv2 wants BGR
    write("rgb_16bit.png", cv2.imencode(".png", rgb16)[1].tobytes(), ("clean", "pass", None))
    gray16 = Image.fromarray(np.asarray(_photo(5).convert("L"), dtype=np.uint16) * 257)
    buf = io.BytesIO()
    gray16.save(buf, format="PNG")
    write("gray_16bit.png", buf.getvalue(), ("clean", "reject", "grayscale_mode"))
    pal = _photo(6).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    pal_arr = np.asarray(pal).copy()
    pal_arr[:, : pal_arr.shape[1] // 2] = 0  # left half uses the transparent index
    pal2 = Image.fromarray(pal_arr, mode="P")
    pal2.putpalette(pal.getpalette())
    buf = io.BytesIO()
    pal2.save(buf, format="PNG", transparency=0)
    write("palette_transparent.png", buf.getvalue(), ("clean", "reject", "transparent"))
    buf = io.BytesIO()
    _photo(9).convert("RGBA").save(buf, format="PNG")
    write("rgba_opaque.png", buf.getvalue(), ("clean", "pass", None))
    frames = [_photo(i, (320, 240)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    write("animated.gif", buf.getvalue(), ("clean", "reject", "animated"))
    buf = io.BytesIO()  # camera MPO: a JPEG plus a preview frame; not an animation
    _photo(2).save(buf, format="MPO", save_all=True, append_images=[_photo(2, (160, 120))])
    write("camera_mpo.jpg", buf.getvalue(), ("clean", "pass", None))
    exif = Image.Exif()
    exif[0x0112] = 6
    write(
        "exif_rotated.jpg",
        _jpeg_bytes(_photo(8).transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes()),
        ("clean", "pass", None),
    )
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write("icc_tagged.jpg", _jpeg_bytes(_photo(9), icc_profile=srgb), ("clean", "pass", None))
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buf, format="PNG")
    write("one_pixel.png", buf.getvalue(), ("clean", "reject", "too_small"))
    write("ratio_100_1.jpg", _jpeg_bytes(_photo(10, (4000, 40))), ("clean", "reject", "too_small"))
    write(
        "ratio_4_1.jpg", _jpeg_bytes(_photo(11, (1600, 400))), ("clean", "reject", "aspect_ratio")
    )
    for fmt, name in (("WEBP", "photo.webp"), ("TIFF", "photo.tiff"), ("BMP", "photo.bmp")):
        buf = io.BytesIO()
        _photo(12 + len(expected) % 3).save(buf, format=fmt)
        write(name, buf.getvalue(), ("clean", "pass", None))
    gray_src = Image.open(gray_photos()[0]).convert("L").resize((640, 480))
    write("grayscale.jpg", _jpeg_bytes(gray_src), ("clean", "reject", "grayscale_mode"))
    write(
        "colour_of_gray.jpg", _jpeg_bytes(gray_src.convert("RGB")), ("clean", "reject", "grayscale")
    )
    write("UPPER_CASE.JPG", _jpeg_bytes(_photo(13)), ("clean", "pass", None))
    write("spaces and ünïcødé 写真.jpg", _jpeg_bytes(_photo(14)), ("clean", "pass", None))
    write("jpeg_named.png", _jpeg_bytes(_photo(15)), ("clean", "pass", None))
    write(
        "blurry.jpg",
        _jpeg_bytes(_photo(16).filter(ImageFilter.GaussianBlur(12))),
        ("clean", "reject", "blurry"),
    )
    # Sensor-like luminance grain at full resolution (the x4 measurement image averages it
    # away; the full-resolution noise estimate sees it).
    grain = np.random.default_rng(0).normal(0, 20, (480, 640, 1))
    noisy = np.clip(np.asarray(_photo(17), dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    write(
        "noisy.jpg", _jpeg_bytes(Image.fromarray(noisy), quality=95), ("clean", "reject", "noisy")
    )
    dark = (np.asarray(_photo(18), dtype=np.float64) * 0.04).astype(np.uint8)
    write("too_dark.jpg", _jpeg_bytes(Image.fromarray(dark)), ("clean", "reject", "too_dark"))
    bright = 255 - (255 - np.asarray(_photo(0), dtype=np.float64)) * 0.04
    write(
        "too_bright.png",
        _png(Image.fromarray(bright.astype(np.uint8))),
        ("clean", "reject", "too_bright"),
    )
    flat = np.full((480, 640, 3), (90, 140, 60), np.uint8)
    flat[::2, ::2] = (100, 130, 70)  # two colours: detail for the Laplacian, ~1 bit of entropy
    write(
        "low_information.png", _png(Image.fromarray(flat)), ("clean", "reject", "low_information")
    )

    # Ingest-level problems: never become images, recorded as path errors.
    os.symlink(folder / "does_not_exist.jpg", folder / "broken_link.jpg")
    expected["broken_link.jpg"] = ("ingest", "broken_symlink")
    (folder / "folder.jpg").mkdir()
    expected["folder.jpg"] = ("ingest", "not_a_file")
    raw = os.fsencode(str(folder)) + b"/caf\xe9_latin1.jpg"
    with open(raw, "wb") as fh:
        fh.write(_jpeg_bytes(_photo(1)))
    expected["caf\\xe9_latin1.jpg"] = ("ingest", "non_utf8_filename")
    return expected


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
