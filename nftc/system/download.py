"""Fetching a blocklist over http(s) with the standard library only: a timeout, a size cap, a conditional GET.

Nothing of what a server answers is trusted: the body is bytes, read up to the cap and no further (a server that
sends more, or announces more, is refused before it fills memory), then parsed and checked by the caller like
any address file. A 304 answer (the list did not change since the ETag or date we keep) carries no body. Every
failure is one `FetchError` line: the caller keeps the last good list and says why.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from .. import __version__
from ..errors import NftcError

DEFAULT_TIMEOUT_SECONDS = 30.0  # for the whole download, not per read
DEFAULT_MAX_BYTES = 16 << 20  # Spamhaus DROP is ~30 kB; a country list a few MB
_CHUNK = 64 << 10
MAX_VALIDATOR = 256  # characters of an ETag or Last-Modified kept: a header is data, not a place to store a file


class FetchError(NftcError):
    """The list could not be fetched (network, HTTP status, too large, too slow); one line."""


@dataclass(frozen=True)
class Validators:
    """What the server gave to tell the list's version (sent back as If-None-Match / If-Modified-Since)."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Fetched:
    """A 200 with its body and validators, or a 304 (`body` None: the list kept is still current)."""

    body: bytes | None
    validators: Validators


def fetch(url: str, known: Validators, timeout: float = DEFAULT_TIMEOUT_SECONDS,
          max_bytes: int = DEFAULT_MAX_BYTES) -> Fetched:
    """GET `url`, conditionally on `known`; the body is at most `max_bytes`, all of it within `timeout` seconds.
    urllib and ssl are imported here, not with the module: every apply reads the kept lists' records, few fetch."""
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=_headers(known))
    deadline = time.monotonic() + timeout
    try:
        with _opener().open(request, timeout=timeout) as response:
            body = _body(response, max_bytes, deadline)
            return Fetched(body, Validators(_header(response, "ETag"), _header(response, "Last-Modified")))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(None, known)
        raise FetchError(f"HTTP {exc.code} {exc.reason}".rstrip()) from None
    except urllib.error.URLError as exc:
        raise FetchError(_reason(exc.reason)) from None
    except (socket.timeout, TimeoutError):
        raise FetchError(f"no answer within {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


def _opener():
    """urllib's opener: no proxy from http_proxy/https_proxy (the environment is not trusted: `su` without `-` keeps
    a user's, and a proxy serves whatever list it likes over plain http), certificates verified, and redirects
    followed within http and https only (urllib refuses others anyway; said here once)."""
    import ssl
    import urllib.request

    class NoRedirectToOtherSchemes(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not newurl.lower().startswith(("http://", "https://")):
                raise FetchError("redirected to a URL that is not http or https")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirectToOtherSchemes(),
                                       urllib.request.HTTPSHandler(context=ssl.create_default_context()))


def _headers(known: Validators) -> dict[str, str]:
    headers = {"User-Agent": f"nftc/{__version__} (blocklist refresh)", "Accept-Encoding": "identity"}
    if known.etag:
        headers["If-None-Match"] = known.etag
    if known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    return headers


def _header(response, name: str) -> str:
    value = response.headers.get(name) or ""
    return value if value.isprintable() and len(value) <= MAX_VALIDATOR else ""


def _body(response, max_bytes: int, deadline: float) -> bytes:
    """Read at most `max_bytes` + 1 bytes; refused as too large past that, or when Content-Length says so."""
    announced = response.headers.get("Content-Length")
    if announced and announced.isdigit() and int(announced) > max_bytes:
        raise FetchError(f"the list is larger than {_size(max_bytes)} (Content-Length {announced})")
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError("the download took longer than the timeout")
        chunk = response.read(min(_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"the list is larger than {_size(max_bytes)}")


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"


def _reason(reason) -> str:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer within the timeout"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)
