"""Which registries the engine may pull a request's image from: ``allowed_registries``.

A pull is a request the engine sends wherever the image's name points, from the engine's
host: an image ``127.0.0.1:18999/x/y:z`` makes it talk HTTP to a service on the host's
loopback. So the registry of every image is checked before anything reaches the engine.

**Which part is the registry.** The same rule as the docker CLI, the engine and podman
(distribution/reference's ``splitDockerDomain``): the part before the first ``/`` when it
contains a ``.`` or a ``:``, is ``localhost``, or holds an upper-case letter; otherwise the
image is on Docker Hub, which the patterns call ``docker.io`` (``index.docker.io`` is the
same registry).

**What an entry allows.** Each entry of ``allowed_registries`` is ``HOST[:PORT]``, compared
without regard to case; ``*`` and ``?`` are wildcards (nothing else is), and a port is part
of the name (``registry.example.org`` does not allow ``registry.example.org:5000``).

* An entry written out in full (``docker.io``, ``10.213.0.2:5000``, ``registry.lab``)
  allows that registry wherever it is, internal addresses included: the operator named it.
* An entry with a wildcard (``*``, ``*.example.org``) allows only public registries. The
  host must not be ``localhost`` nor an IP address that is loopback, private, link-local,
  unspecified, multicast or reserved, in any spelling the engine or the C library reads
  (``127.1``, ``2130706433``, ``0x7f.1``, ``0``, ``[::ffff:7f00:1]``...); a name must
  resolve, here and now, to public addresses only.

What stays open is written down in docs/server.md: the engine resolves the name again
(DNS rebinding), and a registry may redirect the engine, or name a token service, elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
from collections.abc import Iterable

DOCKER_HUB = "docker.io"
LEGACY_DOCKER_HUB = "index.docker.io"
RESOLVE_TIMEOUT = 2.0  # seconds a name may take to resolve before the image is refused

# A registry as the reference grammar has it: a DNS-like name or a bracketed IPv6 address, and a port.
_NAME_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?P<host>{_NAME_PART}(?:\.{_NAME_PART})*|\[[a-fA-F0-9:]+\])(?::(?P<port>[0-9]+))?")
_PATTERN = re.compile(r"[a-zA-Z0-9.\-:\[\]*?]+")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, and IPv4-compatible).
_EMBEDDING_V4 = [ipaddress.IPv6Network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")]

_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dockyter-resolve")


def registry_of(image: str) -> str:
    """The registry ``image`` is pulled from, as the engine reads it; ``docker.io`` for Docker Hub."""
    first, slash, _ = image.partition("/")
    if not slash:
        return DOCKER_HUB
    if first == "localhost" or any(sign in first for sign in ".:") or first.lower() != first:
        return DOCKER_HUB if first == LEGACY_DOCKER_HUB else first
    return DOCKER_HUB


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """``allowed_registries`` as the server compares them; raises ValueError for a bad entry."""
    checked = []
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern) or "/" in pattern:
            raise ValueError(
                f"allowed_registries: {pattern!r} is not a registry host like docker.io, "
                "registry.example.org:5000 or *.example.org"
            )
        lowered = pattern.lower()
        checked.append(DOCKER_HUB if lowered == LEGACY_DOCKER_HUB else lowered)
    return checked


class RegistryRules:
    """``allowed_registries``; :meth:`refusal` says why an image may not be pulled, or None."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = check_patterns(patterns)
        self.exact = {pattern for pattern in self.patterns if not _is_wildcard(pattern)}
        self.wildcards = [_compile(pattern) for pattern in self.patterns if _is_wildcard(pattern)]

    def refusal(self, image: str) -> str | None:
        """Why ``image``'s registry is refused (one line), or None when the engine may pull from it."""
        registry = registry_of(image)
        name = registry.lower()
        if name in self.exact:
            return None
        if not any(pattern.fullmatch(name) for pattern in self.wildcards):
            allowed = ", ".join(self.patterns) or "none"
            return f"the image {image!r} is not allowed: its registry {registry} is not (allowed: {allowed})"
        problem = non_public(name)
        if problem:
            return f"the image {image!r} is not allowed: its registry {registry} {problem}"
        return None


def non_public(registry: str) -> str | None:
    """Why ``registry`` (``HOST[:PORT]``, lower case) may be on this host's networks, or None if public."""
    if registry == DOCKER_HUB:
        return None  # Docker Hub: the engine reaches it at registry-1.docker.io, never at this name
    found = _REGISTRY.fullmatch(registry)
    if not found:
        return "is not a registry host name"
    host = found.group("host")
    if host.startswith("["):
        try:
            address: Address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "is not a valid IPv6 address"
        return _internal(address)
    if host == "localhost" or host.endswith(".localhost"):
        return "is this host (localhost), allowed only when named in allowed_registries"
    literal = _ipv4_literal(host)
    if literal is not None:
        return _internal(literal)
    return _resolves_internal(host)


def _internal(address: Address) -> str | None:
    """Why ``address`` is not a public one, or None."""
    if _not_public(address):
        return f"is an internal address ({address}), allowed only when named in allowed_registries"
    return None


def _not_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        embedded += [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) for net in _EMBEDDING_V4 if address in net]
        if any(inner is not None and _not_public(inner) for inner in embedded):
            return True
        if address.is_site_local:
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as an IPv4 address in any spelling inet_aton reads (``127.1``, ``0x7f.1``, ``2130706433``)."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _resolves_internal(host: str) -> str | None:
    """Resolve ``host`` (at most RESOLVE_TIMEOUT seconds); why it is refused, or None if all its addresses are public."""
    lookup = _resolver.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
    try:
        answers = lookup.result(timeout=RESOLVE_TIMEOUT)
    except concurrent.futures.TimeoutError:
        return f"did not resolve within {RESOLVE_TIMEOUT:g} s"
    except OSError:
        return "does not resolve on the server"
    addresses = {ipaddress.ip_address(str(answer[4][0]).partition("%")[0]) for answer in answers}
    if not addresses:
        return "does not resolve on the server"
    for address in sorted(addresses, key=str):
        if _not_public(address):
            return f"resolves to an internal address ({address}), allowed only when named in allowed_registries"
    return None


def _is_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _compile(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` as wildcards; every other character, ``[`` included, as itself."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))
