"""Images for vision probes: read once at config load, typed by their magic bytes.

The file's extension is not trusted: a provider rejects a JPEG sent as image/png, and a
text file renamed .png must be a config error, not a probe that fails every minute.
"""

from __future__ import annotations

from pathlib import Path

from probes.target import ImageSpec

# Most providers cap an inline image at ~5 MB (Anthropic: 5 MB; Bedrock: 3.75 MB per
# image); base64 in a JSON body adds a third. A probe needs a small image anyway.
MAX_IMAGE_BYTES = 5 * 1024 * 1024


class ImageError(ValueError):
    """The image cannot be sent: the message says why."""


def media_type(data: bytes) -> str | None:
    """The image's MIME type from its first bytes (PNG, JPEG, GIF, WebP), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load_image(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> ImageSpec:
    """The image at `path`, or ImageError saying what is wrong with it."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ImageError(f"{p}: no such file" if not p.exists() else f"{p}: not a regular file")
        size = p.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{p}: {size} bytes is over the {max_bytes} byte limit for a probe image")
        with p.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"{p}: cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:  # grew since stat
        raise ImageError(f"{p}: over the {max_bytes} byte limit for a probe image")
    if not data:
        raise ImageError(f"{p}: the file is empty")
    kind = media_type(data)
    if kind is None:
        raise ImageError(f"{p}: not a PNG, JPEG, GIF or WebP image (by its first bytes)")
    return ImageSpec(media_type=kind, data=data)
