"""Downloading provider images safely and turning them into what we store.

A provider URL is untrusted input: only the provider's own hosts (and those the settings
name), only http(s), no redirects, a byte cap read as a stream, an overall deadline, and
Pillow with a pixel cap and a format allow-list. A private or loopback address is refused
unless the host is one the settings name explicitly (the local simulator).
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from PIL import Image as PILImage

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMB_WIDTH = 512


class ImageFetchError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Picture:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def private_hosts_allowed() -> set[str]:
    """Hosts that may resolve to private addresses: only the simulator, and only when used."""
    if settings.MJ_PROVIDER == "simulator":
        return {settings.MJ_SIMULATOR_HOST}
    return set()


def check_url(url: str, allowed_hosts: set[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ImageFetchError(
            f"Refusing a {parts.scheme or 'schemeless'} image URL.", permanent=True
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or parts.username or parts.password:
        raise ImageFetchError("Refusing an image URL without a plain host.", permanent=True)
    if host not in {h.lower() for h in allowed_hosts}:
        raise ImageFetchError(
            f"Image host {host!r} is not an allowed provider host.", permanent=True
        )
    if host in private_hosts_allowed():
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ImageFetchError(f"Cannot resolve {host}: {exc}", permanent=False) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            raise ImageFetchError(f"{host} resolves to a non-public address.", permanent=True)


def download(
    url: str,
    *,
    allowed_hosts: set[str],
    max_bytes: int | None = None,
    timeout: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> bytes:
    max_bytes = max_bytes or settings.MJ_INGEST_MAX_BYTES
    deadline = time.monotonic() + (timeout or settings.MJ_INGEST_TIMEOUT)
    check_url(url, allowed_hosts)
    chunks: list[bytes] = []
    received = 0
    try:
        with (
            httpx.Client(timeout=10.0, follow_redirects=False, transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code in (404, 410):
                raise ImageFetchError(
                    f"The image is gone (HTTP {response.status_code}).", permanent=False
                )
            if response.status_code != 200:
                raise ImageFetchError(
                    f"The image host answered HTTP {response.status_code}.",
                    permanent=response.is_redirect,
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageFetchError("The image is larger than allowed.", permanent=True)
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise ImageFetchError("The image is larger than allowed.", permanent=True)
                if time.monotonic() > deadline:
                    raise ImageFetchError("The image took too long to download.", permanent=False)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise ImageFetchError(f"Could not download the image: {exc}", permanent=False) from exc
    return b"".join(chunks)


def decode(data: bytes) -> Picture:
    """Validate untrusted bytes as a PNG, JPEG or WebP within the pixel cap.

    The cap is checked on the size the header declares, before any pixel is decoded; it is a
    per-call check rather than a change to Pillow's process-wide MAX_IMAGE_PIXELS, which
    threads decoding at once would race on. Pillow's own bomb error stays as a backstop.
    """
    try:
        with PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            if image.width * image.height > settings.MJ_IMAGE_MAX_PIXELS:
                raise ImageFetchError(
                    f"The image is too large to decode: {image.width}x{image.height} pixels.",
                    permanent=True,
                )
            image.load()
            return Picture(
                data=data, format=str(image.format), width=image.width, height=image.height
            )
    except PILImage.DecompressionBombError as exc:
        raise ImageFetchError(f"The image is too large to decode: {exc}", permanent=True) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageFetchError(f"Not a PNG, JPEG or WebP image: {exc}", permanent=True) from exc


def reencode_png(picture: Picture) -> Picture:
    """Re-encode as PNG without metadata (EXIF, text chunks, ICC) from the provider."""
    with PILImage.open(io.BytesIO(picture.data)) as image:
        clean = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=False)
    return Picture(data=out.getvalue(), format="PNG", width=clean.width, height=clean.height)


def thumbnail(picture: Picture, width: int = THUMB_WIDTH, quality: int = 82) -> Picture:
    with PILImage.open(io.BytesIO(picture.data)) as image:
        image = image.convert("RGB")
        if image.width > width:
            height = max(1, round(image.height * width / image.width))
            image = image.resize((width, height), PILImage.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="WEBP", quality=quality, method=4)
    return Picture(data=out.getvalue(), format="WEBP", width=image.width, height=image.height)
