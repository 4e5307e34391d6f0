"""Downloading provider images safely (the network half of ingest; gallery.imaging decodes).

A provider URL is untrusted input. `download` accepts only http(s) on ports 80/443 of a host
the allow-list names, never follows a redirect, reads the body as a stream under a byte cap
and an overall deadline, and keeps only bytes that start like a PNG, JPEG or WebP.

The address check runs where the connection is made (OWASP SSRF cheat sheet; Healthchecks
checks the socket it opens). `PinnedTransport` is httpx's transport with its own network
backend: the backend resolves the host itself, refuses the host if any address is not
public (IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they carry),
connects to that exact address, then checks the peer address of the socket it got. The URL,
the Host header and the TLS server name (SNI and certificate check) stay the host name, so a
name that resolves to a public address when checked and to 127.0.0.1 a moment later (DNS
rebinding) never reaches 127.0.0.1. A private address is admitted only for a host the
settings name explicitly (`private_hosts_allowed`: the local simulator).
"""

from __future__ import annotations

import ipaddress
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from gallery.providers.base import ssl_context

# Ports a provider host may be reached on (the simulator's host may use any).
ALLOWED_PORTS = frozenset({80, 443})
# Longest any single network operation (resolve, connect, TLS, one read) may take, inside
# the overall deadline of the download.
SOCKET_TIMEOUT = 10.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to try, as strings (getaddrinfo's answer).
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local use
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
# Host names inet_aton reads as an IPv4 address: 2130706433, 0x7f000001, 0177.1 ...
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAGIC_LENGTH = 12


class ImageFetchError(Exception):
    """An image we could not get, or will not keep; `permanent` says whether to retry."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


# --- address policy -------------------------------------------------------------------


def private_hosts_allowed() -> set[str]:
    """Hosts that may resolve to private addresses, on any port: the simulator when it is the
    provider; with MJ_PROVIDER_PRIVATE_NETWORK (a self-hosted midjourney-proxy) the hosts of
    the provider URLs and MJ_IMAGE_HOSTS, which the operator named."""
    if settings.MJ_PROVIDER == "simulator":
        return {normalize_host(settings.MJ_SIMULATOR_HOST)}
    if not settings.MJ_PROVIDER_PRIVATE_NETWORK:
        return set()
    urls = (settings.COMETAPI_BASE_URL, settings.PIAPI_BASE_URL)
    hosts = [*(urlsplit(url).hostname for url in urls), *settings.MJ_IMAGE_HOSTS]
    return {normalize_host(host) for host in hosts if host}


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped, NAT64 (64:ff9b::/96) or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IPAddress) -> bool:
    """Whether we may connect to `address` for an untrusted URL.

    `is_global` alone is not enough: 64:ff9b::7f00:1 (NAT64 of 127.0.0.1) and multicast
    addresses count as global, so embedded IPv4 addresses are judged on their own and
    multicast and reserved ranges are refused.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id or address in _NAT64_LOCAL or address in _IPV4_COMPATIBLE:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    return address.is_global and not address.is_multicast and not address.is_reserved


def ip_literal(host: str) -> IPAddress | None:
    """The address a host name spells out itself, in any form a resolver would accept."""
    host = normalize_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_host(host: str, port: int, allowed: frozenset[str], private: frozenset[str]) -> str:
    """The normalized host name, if it is allow-listed and the port is one we use."""
    name = normalize_host(host)
    if not name or name not in allowed:
        raise ImageFetchError(
            f"Image host {name!r} is not an allowed provider host.", permanent=True
        )
    if port not in ALLOWED_PORTS and name not in private:
        raise ImageFetchError(f"Refusing port {port} for image host {name}.", permanent=True)
    return name


@dataclass(frozen=True)
class Policy:
    """Where one download may connect: which hosts, which of them may be private, by when."""

    allowed_hosts: frozenset[str]
    private_hosts: frozenset[str]
    deadline: float
    resolver: Resolver = system_resolver

    @classmethod
    def build(
        cls,
        allowed_hosts: Iterable[str],
        deadline: float,
        resolver: Resolver | None = None,
        private_hosts: Iterable[str] | None = None,
    ) -> Policy:
        return cls(
            allowed_hosts=frozenset(normalize_host(h) for h in allowed_hosts if h),
            private_hosts=_private(private_hosts),
            deadline=deadline,
            resolver=resolver or system_resolver,
        )

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve an allowed host; refuse it if any of its addresses is not public."""
        name = check_host(host, port, self.allowed_hosts, self.private_hosts)
        literal = ip_literal(name)
        found = [literal] if literal is not None else self._resolve(name, port)
        if name not in self.private_hosts:
            for address in found:
                if not is_public_address(address):
                    raise ImageFetchError(
                        f"{name} resolves to a non-public address ({address}).", permanent=True
                    )
        return found

    def check_peer(self, host: str, expected: IPAddress, sock: socket.socket) -> None:
        """The address the socket is actually connected to must be the one we checked."""
        peer = ipaddress.ip_address(str(sock.getpeername()[0]))
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        if isinstance(expected, ipaddress.IPv6Address) and expected.ipv4_mapped is not None:
            expected = expected.ipv4_mapped
        name = normalize_host(host)
        if name in self.private_hosts and peer == expected:
            return
        if peer != expected or not is_public_address(peer):
            raise ImageFetchError(
                f"The connection to {name} reached {peer}, not a checked public address.",
                permanent=True,
            )

    def _resolve(self, host: str, port: int) -> list[IPAddress]:
        """Ask the resolver, within the deadline (getaddrinfo itself has no timeout)."""
        answer: list[str] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                answer.extend(self.resolver(host, port))
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)

        worker = threading.Thread(target=work, name=f"resolve {host}", daemon=True)
        worker.start()
        worker.join(max(0.0, min(SOCKET_TIMEOUT, self.remaining())))
        if worker.is_alive():
            raise ImageFetchError(f"Resolving {host} took too long.", permanent=False)
        if failure:
            raise ImageFetchError(f"Cannot resolve {host}: {failure[0]}", permanent=False)
        try:
            found = [ipaddress.ip_address(text) for text in answer]
        except ValueError as exc:
            raise ImageFetchError(f"Cannot resolve {host}: {exc}", permanent=False) from exc
        if not found:
            raise ImageFetchError(f"Cannot resolve {host}: no address.", permanent=False)
        return found


# --- the pinned transport ---------------------------------------------------------------


class PinnedStream(httpcore.NetworkStream):
    """A socket whose every operation ends by the download's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _timeout(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error("The download deadline has passed.")
        return min(remaining, SOCKET_TIMEOUT if timeout is None else timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._sock.settimeout(self._timeout(timeout, httpcore.ReadTimeout))
        try:
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        while buffer:
            self._sock.settimeout(self._timeout(timeout, httpcore.WriteTimeout))
            try:
                sent = self._sock.send(buffer)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            buffer = buffer[sent:]

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host name: SNI and the certificate check use it, not
        # the address we pinned.
        try:
            self._sock.settimeout(self._timeout(timeout, httpcore.ConnectTimeout))
            wrapped = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            self.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return PinnedStream(wrapped, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock  # has selected_alpn_protocol(), as httpcore asks
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable)
        return None


class PinnedBackend(httpcore.NetworkBackend):
    """Resolves and checks the host itself, then connects to exactly the checked address."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception = httpcore.ConnectError(f"No address to connect to for {host}.")
        for address in self.policy.addresses(host, port):
            remaining = self.policy.remaining()
            if remaining <= 0:
                raise httpcore.ConnectTimeout("The download deadline has passed.")
            limit = min(remaining, SOCKET_TIMEOUT if timeout is None else timeout)
            try:
                sock = self._open_socket(address, port, limit, local_address)
            except TimeoutError as exc:
                last_error = httpcore.ConnectTimeout(f"{address}: {exc}")
                continue
            except OSError as exc:
                last_error = httpcore.ConnectError(f"{address}: {exc}")
                continue
            try:
                self.policy.check_peer(host, address, sock)
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except BaseException:
                sock.close()
                raise
            return PinnedStream(sock, self.policy.deadline)
        raise last_error

    def _open_socket(
        self, address: IPAddress, port: int, timeout: float, local_address: str | None
    ) -> socket.socket:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            if local_address:
                sock.bind((local_address, 0))
            sock.connect((str(address), port))
        except BaseException:
            sock.close()
            raise
        return sock

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise ImageFetchError("Image downloads never use Unix sockets.", permanent=True)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over `PinnedBackend`: no proxies, no retries, HTTP/1.1."""

    def __init__(self, policy: Policy, *, verify: ssl.SSLContext | bool = True) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else ssl_context(verify)
        super().__init__(verify=context, trust_env=False)
        # The pool is replaced by one that opens its connections through our backend; the
        # request and response handling stays httpx's.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
            network_backend=PinnedBackend(policy),
        )


# --- download ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def _private(hosts: Iterable[str] | None) -> frozenset[str]:
    """The hosts that may be private: those given (the job's account), else the settings'."""
    if hosts is None:
        return frozenset(private_hosts_allowed())
    return frozenset(normalize_host(host) for host in hosts if host)


def check_url(
    url: str, allowed_hosts: Iterable[str], private_hosts: Iterable[str] | None = None
) -> Target:
    """Scheme, user info, host and port of an image URL, as httpx will read it."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ImageFetchError(f"Refusing a malformed image URL: {exc}", permanent=True) from exc
    if parsed.scheme not in {"http", "https"}:
        raise ImageFetchError(
            f"Refusing a {parsed.scheme or 'schemeless'} image URL.", permanent=True
        )
    if parsed.userinfo or not parsed.host:
        raise ImageFetchError("Refusing an image URL without a plain host.", permanent=True)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allowed = frozenset(normalize_host(h) for h in allowed_hosts if h)
    name = check_host(host, port, allowed, _private(private_hosts))
    return Target(parsed.scheme, name, port)


def pinned_transport(
    target: Target,
    allowed_hosts: Iterable[str],
    *,
    deadline: float,
    resolver: Resolver | None = None,
    private_hosts: Iterable[str] | None = None,
) -> PinnedTransport:
    """A transport that may reach only `target`'s checked addresses until `deadline`. A host
    that resolves where it may not is refused here, before any connection (ImageFetchError);
    PinnedBackend checks again when it connects."""
    policy = Policy.build(
        allowed_hosts, deadline=deadline, resolver=resolver, private_hosts=private_hosts
    )
    policy.addresses(target.host, target.port)
    return PinnedTransport(policy)


def sniff_format(head: bytes) -> str | None:
    """The format the first bytes announce (not what the Content-Type claims)."""
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(_JPEG_MAGIC):
        return "JPEG"
    if len(head) >= _MAGIC_LENGTH and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def download(
    url: str,
    *,
    allowed_hosts: Iterable[str],
    max_bytes: int | None = None,
    timeout: float | None = None,
    transport: httpx.BaseTransport | None = None,
    resolver: Resolver | None = None,
    private_hosts: Iterable[str] | None = None,
) -> bytes:
    """The body of `url`, if it is a PNG, JPEG or WebP within the byte cap and the deadline.

    `transport` replaces the pinned transport (tests with httpx.MockTransport only: no
    address is checked then); `resolver` replaces getaddrinfo. `private_hosts` are the hosts
    that may resolve to private addresses (the job's account; the settings' when None).
    """
    max_bytes = max_bytes or settings.MJ_INGEST_MAX_BYTES
    total = timeout or settings.MJ_INGEST_TIMEOUT
    deadline = time.monotonic() + total
    allowed = list(allowed_hosts)
    target = check_url(url, allowed, private_hosts)
    if transport is None:
        transport = pinned_transport(
            target, allowed, deadline=deadline, resolver=resolver, private_hosts=private_hosts
        )
    chunks: list[bytes] = []
    received = 0
    try:
        with (
            httpx.Client(
                transport=transport,
                follow_redirects=False,
                trust_env=False,
                timeout=min(SOCKET_TIMEOUT, total),
                headers={
                    "Accept": "image/png, image/jpeg, image/webp",
                    "Accept-Encoding": "identity",
                },
            ) as client,
            client.stream("GET", url) as response,
        ):
            _check_response(response, max_bytes)
            checked = False
            # Raw bytes: no transparent gzip, so the cap counts what we keep.
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > max_bytes:
                    raise ImageFetchError("The image is larger than allowed.", permanent=True)
                if time.monotonic() > deadline:
                    raise ImageFetchError("The image took too long to download.", permanent=False)
                chunks.append(chunk)
                if not checked and received >= _MAGIC_LENGTH:
                    _check_magic(b"".join(chunks))
                    checked = True
    except httpx.TimeoutException as exc:
        raise ImageFetchError("The image took too long to download.", permanent=False) from exc
    except httpx.HTTPError as exc:
        raise ImageFetchError(f"Could not download the image: {exc}", permanent=False) from exc
    data = b"".join(chunks)
    _check_magic(data)
    return data


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    if response.is_redirect or 300 <= response.status_code < 400:
        raise ImageFetchError(
            f"The image host answered a redirect (HTTP {response.status_code}); "
            "redirects are not followed.",
            permanent=True,
        )
    if response.status_code in (404, 410):
        raise ImageFetchError(f"The image is gone (HTTP {response.status_code}).", permanent=False)
    if response.status_code != 200:
        raise ImageFetchError(
            f"The image host answered HTTP {response.status_code}.", permanent=False
        )
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        # Refused on the header: the body is never read.
        raise ImageFetchError("The image is larger than allowed.", permanent=True)


def _check_magic(data: bytes) -> None:
    if sniff_format(data[:_MAGIC_LENGTH]) is None:
        raise ImageFetchError(
            "The download is not a PNG, JPEG or WebP image (its first bytes say so).",
            permanent=True,
        )
