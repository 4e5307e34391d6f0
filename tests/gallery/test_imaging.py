from __future__ import annotations

import io
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, PngImagePlugin

from gallery import downloads, imaging
from tests.gallery.factories import (
    QUADRANT_COLOURS,
    RawServer,
    bomb_png,
    grid_png,
    http_answer,
    png_bytes,
)


def test_decode_accepts_png_jpeg_and_webp() -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = io.BytesIO()
        PILImage.new("RGB", (40, 30), "#336699").save(out, format=fmt)
        picture = imaging.decode(out.getvalue())
        assert (picture.format, picture.width, picture.height) == (fmt, 40, 30)


def test_decode_refuses_an_image_over_the_pixel_cap(settings: Any) -> None:
    settings.MJ_IMAGE_MAX_PIXELS = 1_000_000
    imaging.decode(png_bytes((1000, 1000)))  # exactly at the cap
    with pytest.raises(imaging.ImageFetchError, match="too large") as caught:
        imaging.decode(png_bytes((1001, 1000)))
    assert caught.value.permanent
    assert PILImage.MAX_IMAGE_PIXELS != 1_000_000  # Pillow's global is left alone


def test_an_ingest_decodes_the_picture_once_and_encodes_each_size_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picture = imaging.decode(png_bytes((1024, 1024)))
    opened: list[object] = []
    real_open = PILImage.open
    monkeypatch.setattr(PILImage, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    encoded: list[tuple[int, int]] = []
    real_webp = imaging._encode_webp

    def encode_webp(image: PILImage.Image, width: int, quality: int) -> imaging.Picture:
        encoded.append((id(image), min(width, image.width)))
        return real_webp(image, width, quality)

    monkeypatch.setattr(imaging, "_encode_webp", encode_webp)
    whole, tiles = imaging.renditions(picture, grid=True)
    assert opened == []  # the pixels decode() made are the ones cut and encoded
    # The grid at 512 and 1024 px; each 512 px tile once, its one size serving both widths.
    assert len(encoded) == 6 and len(set(encoded)) == 6
    assert [[t.width for t in r.thumbs] for r in (whole, *tiles)] == [
        [512, 1024],
        *[[512, 512]] * 4,
    ]
    assert tiles[0].thumbs[0] is tiles[0].thumbs[1]
    assert [(t.width, t.height) for t in tiles] == [(512, 512)] * 4


def test_decode_refuses_other_formats() -> None:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(out, format="GIF")
    with pytest.raises(imaging.ImageFetchError, match="Not a PNG"):
        imaging.decode(out.getvalue())
    with pytest.raises(imaging.ImageFetchError):
        imaging.decode(b"<html>not an image</html>")


# --- URL and address policy ---------------------------------------------------------------

PUBLIC = "93.184.216.34"  # a documentation-free public address (example.com's old one)


class Dialled(Exception):
    """Raised instead of opening a socket: the test records where it would have gone."""


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every connection the pinned backend tries, and make none of them happen."""
    attempts: list[tuple[str, int]] = []

    def open_socket(
        self: downloads.PinnedBackend, address: Any, port: int, timeout: float, local: Any
    ) -> socket.socket:
        attempts.append((str(address), port))
        raise ConnectionRefusedError("no network in this test")

    monkeypatch.setattr(downloads.PinnedBackend, "_open_socket", open_socket)
    return attempts


@pytest.fixture
def no_private_hosts(settings: Any) -> None:
    """A real provider: no host gets the simulator's loopback exception."""
    settings.MJ_PROVIDER = "cometapi"


def table_resolver(table: dict[str, list[str]]) -> downloads.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if host == "localhost":
            return downloads.system_resolver(host, port)
        return list(table[host])

    return resolve


BLOCKED_ADDRESSES = [
    "http://127.0.0.1/x.png",
    "http://127.1/x.png",
    "http://[::1]/x.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/x.png",
    "http://172.16.0.1/x.png",
    "http://192.168.1.1/x.png",
    "http://100.64.0.1/x.png",
    "http://0.0.0.0/x.png",
    "http://224.0.0.1/x.png",
    "http://[::ffff:127.0.0.1]/x.png",
    "http://[::ffff:169.254.169.254]/x.png",
    "http://[64:ff9b::7f00:1]/x.png",
    "http://[64:ff9b::a9fe:a9fe]/x.png",
    "http://[64:ff9b:1::5db8:d822]/x.png",
    "http://[2002:7f00:1::]/x.png",
    "http://[::7f00:1]/x.png",
    "http://[fc00::1]/x.png",
    "http://[fe80::1]/x.png",
    "http://[ff0e::1]/x.png",
    "http://0x7f000001/x.png",
    "http://2130706433/x.png",
    "http://localhost./x.png",
    "http://localhost/x.png",
    "http://internal.example/x.png",  # a name that resolves to a private address
    "http://mixed.example/x.png",  # one public and one private address
]


@pytest.mark.parametrize("url", BLOCKED_ADDRESSES)
def test_non_public_addresses_are_refused_before_any_connection(
    url: str, no_private_hosts: None, no_connections: list[tuple[str, int]]
) -> None:
    host = urlsplit(url).hostname or ""
    resolver = table_resolver(
        {"internal.example": ["10.1.2.3"], "mixed.example": [PUBLIC, "192.168.0.10"]}
    )
    # The host is allow-listed, so only the address check can refuse it.
    with pytest.raises(imaging.ImageFetchError, match="non-public address") as caught:
        downloads.download(url, allowed_hosts={host}, resolver=resolver, timeout=5)
    assert caught.value.permanent
    assert no_connections == []


REFUSED_URLS = [
    ("file:///etc/passwd", "file"),
    ("gopher://cdn.example.com/_GET", "gopher"),
    ("ftp://cdn.example.com/x.png", "ftp"),
    ("cdn.example.com/x.png", "schemeless"),
    ("https://cdn.example.com@evil.example/x.png", "plain host"),
    ("https://user:pw@cdn.example.com/x.png", "plain host"),
    ("https://evil.example/x.png", "not an allowed"),
    ("https://cdn.example.com.evil.example/x.png", "not an allowed"),
    ("https://169.254.169.254/x.png", "not an allowed"),
    ("https://cdn.example.com:22/x.png", "port 22"),
    ("http://cdn.example.com:8080/x.png", "port 8080"),
    ("http://0177.0.0.1/x.png", "malformed"),  # octal: httpx refuses to parse it
    ("http://[::1/x.png", "malformed"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_urls_outside_the_policy_are_refused(
    url: str, reason: str, no_private_hosts: None, no_connections: list[tuple[str, int]]
) -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} must not even be resolved")

    with pytest.raises(imaging.ImageFetchError, match=reason) as caught:
        downloads.download(url, allowed_hosts={"cdn.example.com"}, resolver=resolver, timeout=5)
    assert caught.value.permanent
    assert no_connections == []


def test_an_allowed_public_host_is_dialled_at_the_address_that_was_checked(
    no_private_hosts: None, no_connections: list[tuple[str, int]]
) -> None:
    resolver = table_resolver({"cdn.example.com": [PUBLIC]})
    with pytest.raises(imaging.ImageFetchError) as caught:
        downloads.download(
            "https://cdn.example.com/x.png",
            allowed_hosts={"cdn.example.com"},
            resolver=resolver,
            timeout=5,
        )
    assert not caught.value.permanent  # connection refused: worth a retry
    assert no_connections == [(PUBLIC, 443)]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC, True),
        ("2606:4700:4700::1111", True),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
        ("2002:5db8:d822::1", True),  # 6to4 of a public address
        ("127.0.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("239.1.2.3", False),
        ("::", False),
        ("::1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert downloads.is_public_address(ipaddress.ip_address(address)) is public


def test_the_simulator_host_alone_may_be_private(settings: Any) -> None:
    settings.MJ_PROVIDER = "simulator"
    settings.MJ_SIMULATOR_HOST = "127.0.0.1"
    assert downloads.private_hosts_allowed() == {"127.0.0.1"}
    settings.MJ_PROVIDER = "cometapi"
    assert downloads.private_hosts_allowed() == set()


# --- DNS rebinding and the pinned connection -----------------------------------------------


@pytest.fixture
def png_server() -> Iterator[RawServer]:
    server = RawServer(http_answer(png_bytes((32, 24))))
    yield server
    server.close()


def test_dns_rebinding_is_blocked_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, no_private_hosts: None, png_server: RawServer
) -> None:
    """The first lookup (the early check) says public, the lookup at connect says loopback."""
    monkeypatch.setattr(downloads, "ALLOWED_PORTS", frozenset({80, 443, png_server.port}))
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    with pytest.raises(imaging.ImageFetchError, match=r"non-public address \(127.0.0.1\)") as e:
        downloads.download(
            png_server.url(host="cdn.example.com"),
            allowed_hosts={"cdn.example.com"},
            resolver=rebinding,
            timeout=5,
        )
    assert e.value.permanent
    assert lookups == ["cdn.example.com", "cdn.example.com"]
    assert png_server.connections == 0


def test_the_connected_peer_address_is_checked(
    monkeypatch: pytest.MonkeyPatch, no_private_hosts: None, png_server: RawServer
) -> None:
    """Resolution says public; the socket lands on loopback anyway (NAT, a hostile resolver
    racing the connect): the peer address of the real socket is what gets refused."""
    monkeypatch.setattr(downloads, "ALLOWED_PORTS", frozenset({80, 443, png_server.port}))

    def divert(
        self: downloads.PinnedBackend, address: Any, port: int, timeout: float, local: Any
    ) -> socket.socket:
        assert str(address) == PUBLIC
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)

    monkeypatch.setattr(downloads.PinnedBackend, "_open_socket", divert)
    with pytest.raises(imaging.ImageFetchError, match=r"reached 127\.0\.0\.1") as caught:
        downloads.download(
            png_server.url(host="cdn.example.com"),
            allowed_hosts={"cdn.example.com"},
            resolver=table_resolver({"cdn.example.com": [PUBLIC]}),
            timeout=5,
        )
    assert caught.value.permanent
    assert png_server.requests == []  # connected, but not a byte of HTTP was sent


def test_the_pinned_address_is_used_and_the_host_header_kept(
    settings: Any, png_server: RawServer
) -> None:
    # A name no real resolver knows: the request can only arrive through our resolution.
    settings.MJ_SIMULATOR_HOST = "images.sim.test"
    data = downloads.download(
        png_server.url(host="images.sim.test"),
        allowed_hosts={"images.sim.test"},
        resolver=table_resolver({"images.sim.test": ["127.0.0.1"]}),
        timeout=5,
    )
    assert imaging.decode(data).width == 32
    assert f"host: images.sim.test:{png_server.port}" in png_server.requests[0].decode().lower()


def test_proxy_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch, settings: Any, png_server: RawServer
) -> None:
    proxy = RawServer(http_answer(b"from the proxy", content_type="text/plain"))
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url(path=""))
        monkeypatch.setenv("ALL_PROXY", proxy.url(path=""))
        data = downloads.download(png_server.url(), allowed_hosts={"127.0.0.1"}, timeout=5)
    finally:
        proxy.close()
    assert data.startswith(b"\x89PNG")
    assert proxy.connections == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=images.sim.test"),
            *("-addext", "subjectAltName=DNS:images.sim.test"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_uses_the_host_name_for_sni_and_the_certificate(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = RawServer(http_answer(png_bytes()), tls=server_context)
    client_context = ssl.create_default_context(cafile=str(cert))
    resolver = table_resolver({"images.sim.test": ["127.0.0.1"], "other.sim.test": ["127.0.0.1"]})

    def fetch(host: str) -> httpx.Response:
        policy = downloads.Policy(
            allowed_hosts=frozenset({host}),
            private_hosts=frozenset({host}),
            deadline=time.monotonic() + 5,
            resolver=resolver,
        )
        with httpx.Client(transport=downloads.PinnedTransport(policy, verify=client_context)) as c:
            return c.get(server.url(host=host, scheme="https"))

    try:
        response = fetch("images.sim.test")
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
        # The certificate names images.sim.test; we connected to 127.0.0.1 for both names,
        # so only a check against the host name can tell them apart.
        with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
            fetch("other.sim.test")
    finally:
        server.close()
    assert server.server_names[:2] == ["images.sim.test", "other.sim.test"]


# --- redirects, size, type and time ---------------------------------------------------------


def test_a_redirect_is_refused_and_not_followed(png_server: RawServer) -> None:
    redirect = RawServer(
        http_answer(b"", status="302 Found", content_type="text/plain", Location=png_server.url())
    )
    try:
        with pytest.raises(imaging.ImageFetchError, match="redirect") as caught:
            downloads.download(redirect.url(), allowed_hosts={"127.0.0.1"}, timeout=5)
    finally:
        redirect.close()
    assert caught.value.permanent
    assert redirect.connections == 1
    assert png_server.connections == 0


def wait_for_close(server: RawServer, conn: socket.socket, limit: float = 5.0) -> None:
    conn.settimeout(limit)
    try:
        while conn.recv(1024):
            pass
        server.note("client closed")
    except TimeoutError:
        server.note("client still open")


def test_a_declared_length_over_the_cap_is_refused_without_reading_the_body() -> None:
    def lying(server: RawServer, conn: socket.socket, head: bytes) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n")
        server.send(conn, b"Content-Length: 25000000\r\n\r\n")
        # No body follows: a client that tried to read it would sit here until its deadline.
        wait_for_close(server, conn)

    server = RawServer(lying)
    try:
        started = time.monotonic()
        with pytest.raises(imaging.ImageFetchError, match="larger than allowed") as caught:
            downloads.download(
                server.url(), allowed_hosts={"127.0.0.1"}, max_bytes=1_000_000, timeout=5
            )
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 2
        while not server.events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.close()
    assert caught.value.permanent
    assert elapsed < 1.0
    assert server.events == ["client closed"]


def test_a_chunked_body_over_the_cap_is_cut_off() -> None:
    chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (64 * 1024 - 8)
    total = 64 * 1024 * 1024

    def endless(server: RawServer, conn: socket.socket, head: bytes) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            while server.bytes_sent < total:
                server.send(conn, framed)
            server.note("sent everything")
        except OSError:
            server.note("client hung up")

    server = RawServer(endless)
    try:
        with pytest.raises(imaging.ImageFetchError, match="larger than allowed") as caught:
            downloads.download(server.url(), allowed_hosts={"127.0.0.1"}, max_bytes=300_000)
        deadline = time.monotonic() + 5
        while not server.events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.close()
    assert caught.value.permanent
    assert server.events == ["client hung up"]
    assert server.bytes_sent < total


def test_reading_stops_within_one_chunk_of_the_cap() -> None:
    pulled: list[int] = []

    def body() -> Iterator[bytes]:
        for number in range(1000):
            pulled.append(number)
            yield (b"\x89PNG\r\n\x1a\n" if number == 0 else b"") + b"\0" * 10_000

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
    with pytest.raises(imaging.ImageFetchError, match="larger than allowed"):
        downloads.download(
            "https://cdn.example.com/x.png",
            allowed_hosts={"cdn.example.com"},
            max_bytes=25_000,
            transport=transport,
        )
    assert len(pulled) == 3  # 10 kB, 20 kB, then 30 kB > 25 kB: stop


def gif_bytes() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(out, format="GIF")
    return out.getvalue()


def tiff_bytes() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(out, format="TIFF")
    return out.getvalue()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!doctype html><html><body>Not found</body></html>", "text/html"),
        (b"<html>" + b"x" * 200_000, "image/png"),  # the Content-Type lies
        (b"GIF89a" + gif_bytes()[6:], "image/png"),
        (b"II*\0" + tiff_bytes()[4:], "image/png"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "image/png"),
        (b"\x89PN", "image/png"),  # too short to be anything
    ],
)
def test_only_png_jpeg_and_webp_bytes_are_accepted(body: bytes, content_type: str) -> None:
    server = RawServer(http_answer(body, content_type=content_type))
    try:
        with pytest.raises(imaging.ImageFetchError, match="not a PNG, JPEG or WebP") as caught:
            downloads.download(server.url(), allowed_hosts={"127.0.0.1"}, timeout=5)
    finally:
        server.close()
    assert caught.value.permanent


def test_the_magic_bytes_decide_not_the_content_type() -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = io.BytesIO()
        PILImage.new("RGB", (8, 8), "#123456").save(out, format=fmt)
        server = RawServer(http_answer(out.getvalue(), content_type="application/octet-stream"))
        try:
            data = downloads.download(server.url(), allowed_hosts={"127.0.0.1"}, timeout=5)
        finally:
            server.close()
        assert imaging.decode(data).format == fmt


def test_a_slow_drip_hits_the_overall_deadline(settings: Any) -> None:
    settings.MJ_INGEST_TIMEOUT = 0.8
    body = png_bytes((64, 64))

    def drip(server: RawServer, conn: socket.socket, head: bytes) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            for byte in body:  # one byte every 50 ms: each read is quick, the total is not
                server.send(conn, bytes([byte]))
                time.sleep(0.05)
        except OSError:
            server.note("client hung up")

    server = RawServer(drip)
    try:
        started = time.monotonic()
        with pytest.raises(imaging.ImageFetchError, match="too long") as caught:
            downloads.download(server.url(), allowed_hosts={"127.0.0.1"})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert not caught.value.permanent
    assert 0.7 < elapsed < 1.5


@pytest.mark.parametrize("headers_sent", [True, False])
def test_a_host_that_goes_silent_hits_the_overall_deadline(
    settings: Any, headers_sent: bool
) -> None:
    """Every socket wait is cut to what is left of the deadline: a host that answers after
    0.6 s and then stalls ends the download at 1 s, not 0.6 s + another full read timeout."""
    settings.MJ_INGEST_TIMEOUT = 1.0

    def stalls(server: RawServer, conn: socket.socket, head: bytes) -> None:
        time.sleep(0.6)
        if headers_sent:
            server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\x89PNG\r\n\x1a\n")
        else:
            server.send(conn, b"HTTP/1.1 200 OK\r\n")
        wait_for_close(server, conn)

    server = RawServer(stalls)
    try:
        started = time.monotonic()
        with pytest.raises(imaging.ImageFetchError, match="too long"):
            downloads.download(server.url(), allowed_hosts={"127.0.0.1"})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert 0.9 < elapsed < 1.3


def test_a_slow_resolver_hits_the_deadline(no_private_hosts: None) -> None:
    def stuck(host: str, port: int) -> list[str]:
        time.sleep(3)
        return [PUBLIC]

    started = time.monotonic()
    with pytest.raises(imaging.ImageFetchError, match="took too long") as caught:
        downloads.download(
            "https://cdn.example.com/x.png",
            allowed_hosts={"cdn.example.com"},
            resolver=stuck,
            timeout=0.5,
        )
    assert not caught.value.permanent
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(("status", "permanent"), [(404, False), (410, False), (503, False)])
def test_error_statuses(status: int, permanent: bool) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with pytest.raises(imaging.ImageFetchError, match=f"HTTP {status}") as caught:
        downloads.download(
            "https://cdn.example.com/x.png", allowed_hosts={"cdn.example.com"}, transport=transport
        )
    assert caught.value.permanent is permanent


# --- decompression bombs and re-encoding ---------------------------------------------------


def test_a_small_png_declaring_huge_dimensions_is_refused() -> None:
    bomb = bomb_png(30000, 30000)
    assert len(bomb) < 5000
    with pytest.raises(imaging.ImageFetchError, match="too large") as caught:
        imaging.decode(bomb)
    assert caught.value.permanent


def test_pillows_own_limit_caps_a_generous_setting(settings: Any) -> None:
    """Above Pillow's MAX_IMAGE_PIXELS it only warns (up to twice that it does not raise):
    our cap never goes above it, so that range is an error too."""
    settings.MJ_IMAGE_MAX_PIXELS = 10**12
    limit = PILImage.MAX_IMAGE_PIXELS
    assert limit is not None
    width = 10_000
    height = limit // width + 100  # just over Pillow's warning threshold
    with (
        pytest.warns(PILImage.DecompressionBombWarning),  # all Pillow itself does here
        pytest.raises(imaging.ImageFetchError, match="too large"),
    ):
        imaging.decode(bomb_png(width, height))
    assert limit == PILImage.MAX_IMAGE_PIXELS


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "prompt: secret provider metadata")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>secret xmp</x:xmpmeta>")
    exif = PILImage.Exif()
    exif[0x010E] = "secret exif description"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    PILImage.new("RGB", (40, 20), "#336699").save(
        out, format="PNG", pnginfo=info, exif=exif.tobytes(), icc_profile=icc
    )
    return out.getvalue()


def test_reencoding_strips_exif_xmp_text_and_icc() -> None:
    raw = png_with_metadata()
    for marker in (b"iCCP", b"eXIf", b"tEXt", b"iTXt", b"secret"):
        assert marker in raw  # the test input really carries them
    clean = imaging.reencode_png(imaging.decode(raw))
    for marker in (b"iCCP", b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"secret"):
        assert marker not in clean.data
    with PILImage.open(io.BytesIO(clean.data)) as image:
        assert (image.format, image.size) == ("PNG", (40, 20))
        assert "icc_profile" not in image.info and "exif" not in image.info
    for thumb in imaging.thumbnails(imaging.decode(raw)):
        for marker in (b"ICCP", b"EXIF", b"XMP ", b"secret"):
            assert marker not in thumb.data


def test_reencoding_applies_and_drops_the_exif_orientation() -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    PILImage.new("RGB", (40, 20), "#336699").save(out, format="JPEG", exif=exif.tobytes())
    clean = imaging.reencode_png(imaging.decode(out.getvalue()))
    assert (clean.width, clean.height) == (20, 40)
    assert b"Exif" not in clean.data


# --- tiles and thumbnails ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "tile_sizes"),
    [
        ((1600, 1200), [(800, 600)] * 4),
        ((1025, 769), [(512, 384), (513, 384), (512, 385), (513, 385)]),
    ],
)
def test_a_grid_splits_into_four_tiles_in_reading_order(
    size: tuple[int, int], tile_sizes: list[tuple[int, int]]
) -> None:
    grid = imaging.decode(grid_png(size))
    tiles = [imaging.tile_png(grid, index) for index in range(1, 5)]
    assert [(tile.width, tile.height) for tile in tiles] == tile_sizes
    assert sum(tile.width * tile.height for tile in tiles) == size[0] * size[1]
    for tile, colour in zip(tiles, QUADRANT_COLOURS, strict=True):
        assert tile.format == "PNG"
        with PILImage.open(io.BytesIO(tile.data)) as image:
            assert image.size == (tile.width, tile.height)
            # every corner of the tile has its quadrant's colour: no pixel of a neighbour
            corners = [(0, 0), (image.width - 1, 0), (0, image.height - 1)]
            corners.append((image.width - 1, image.height - 1))
            assert {image.getpixel(xy) for xy in corners} == {colour}


def test_an_image_too_small_to_split_is_refused() -> None:
    with pytest.raises(imaging.ImageFetchError, match="too small"):
        imaging.tile_png(imaging.decode(png_bytes((1, 64))), 1)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((2048, 2048), [(512, 512), (1024, 1024)]),
        ((1600, 1200), [(512, 384), (1024, 768)]),
        ((800, 600), [(512, 384), (800, 600)]),  # never wider than the picture
        ((300, 500), [(300, 500), (300, 500)]),
    ],
)
def test_thumbnails_come_in_two_webp_widths(
    size: tuple[int, int], expected: list[tuple[int, int]]
) -> None:
    assert imaging.THUMB_WIDTHS == (imaging.THUMB_WIDTH, imaging.THUMB_LARGE_WIDTH)
    thumbs = imaging.thumbnails(imaging.decode(png_bytes(size)))
    assert [(t.width, t.height) for t in thumbs] == expected
    for thumb in thumbs:
        assert thumb.format == "WEBP" and thumb.data[8:12] == b"WEBP"
        with PILImage.open(io.BytesIO(thumb.data)) as image:
            assert (image.format, image.size) == ("WEBP", (thumb.width, thumb.height))


# --- the whole picture of a PNG keeps its pixel data, without the provider's metadata -------


def test_a_png_picture_is_stored_without_its_metadata_and_with_its_pixels_untouched() -> None:
    raw = png_with_metadata()
    whole = imaging.renditions(imaging.decode(raw), grid=False)[0].png
    for marker in (b"iCCP", b"eXIf", b"tEXt", b"iTXt", b"zTXt", b"secret"):
        assert marker not in whole.data
    with PILImage.open(io.BytesIO(raw)) as before, PILImage.open(io.BytesIO(whole.data)) as after:
        assert after.format == "PNG" and after.size == before.size
        assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()
    # The pixel data went through as sent: no re-encoding.
    assert imaging.stripped_png(imaging.decode(raw)) == whole
    assert whole.data in raw or len(whole.data) < len(raw)


def test_a_png_that_cannot_be_kept_as_sent_is_reencoded() -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # the pixels must be turned to display
    out = io.BytesIO()
    PILImage.new("RGB", (40, 20), "#336699").save(out, format="PNG", exif=exif.tobytes())
    turned = imaging.decode(out.getvalue())
    assert imaging.stripped_png(turned) is None
    assert imaging.renditions(turned, grid=False)[0].png.width == 20
    out = io.BytesIO()
    frames = [PILImage.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:])
    assert b"acTL" in out.getvalue()
    assert imaging.stripped_png(imaging.decode(out.getvalue())) is None  # animated
    jpeg = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    assert imaging.stripped_png(imaging.decode(jpeg.getvalue())) is None
    whole = imaging.renditions(imaging.decode(jpeg.getvalue()), grid=False)[0].png
    assert whole.format == "PNG" and whole.data.startswith(imaging.PNG_SIGNATURE)


def test_a_self_hosted_proxy_on_a_private_address_only_when_the_operator_allows_it(
    settings: Any, png_server: RawServer
) -> None:
    settings.MJ_PROVIDER = "cometapi"
    settings.COMETAPI_BASE_URL = f"http://127.0.0.1:{png_server.port}"
    url, hosts = png_server.url(), {"127.0.0.1"}
    with pytest.raises(downloads.ImageFetchError, match="Refusing port") as refused:
        downloads.download(url, allowed_hosts=hosts, timeout=5)
    assert refused.value.permanent
    settings.MJ_PROVIDER_PRIVATE_NETWORK = True
    assert downloads.download(url, allowed_hosts=hosts, timeout=5).startswith(b"\x89PNG")
    # The switch opens the hosts the operator named, no other private one.
    settings.COMETAPI_BASE_URL = "https://api.cometapi.com"
    with pytest.raises(downloads.ImageFetchError):
        downloads.download(url, allowed_hosts=hosts, timeout=5)
    settings.MJ_IMAGE_HOSTS = ["127.0.0.1"]
    assert downloads.download(url, allowed_hosts=hosts, timeout=5).startswith(b"\x89PNG")
