"""What keeps the app safe to leave running: the per-start token, Host/Origin checks, files only from DATA.

- Every request must name the app itself in `Host` (a DNS-rebinding page names its own host).
- Every write must carry the token printed at start (in the `X-Review-Token` header, which a
  cross-site form cannot set), a JSON body, and, when the browser sends them, an `Origin` that is
  the app's own and a `Sec-Fetch-Site` of same-origin: so no other page can write (CSRF).
- Files are served only from inside DATA, only images, and only after resolving symlinks:
  anything else, `../` included, is a 404 that says nothing about what exists.
- Pages are served with a Content-Security-Policy that allows no inline script, so crawled text
  can only ever be text, and with no referrer, so the token never leaks to a site a link opens.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from pipeline.manifests import safe_relative

TOKEN_HEADER = "X-Review-Token"
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}  # never .svg or .html: they can carry script
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The `Host` values that name this app: the bound address, loopback names, and (when a person
    chose to bind beyond loopback with --host) this machine's own names."""
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    if not is_loopback(host):
        names |= {socket.gethostname(), socket.getfqdn()}
        with contextlib.suppress(
            OSError
        ):  # the machine's own addresses, as a browser on the network names it
            names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    return frozenset(f"{name}:{port}".lower() for name in names if name)


def host_allowed(headers: Mapping[str, str], allowed: frozenset[str]) -> bool:
    return (headers.get("Host") or "").lower() in allowed


def write_refusal(headers: Mapping[str, str], token: str, allowed: frozenset[str]) -> str | None:
    """Why a write must be refused, or None when it may go ahead."""
    given = headers.get(TOKEN_HEADER) or ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        return "missing or wrong token (use the URL the app printed at start)"
    origin = headers.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in allowed}:
        return f"cross-origin write from {origin!r} refused"
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site != "same-origin":
        return f"cross-site write ({fetch_site}) refused"
    if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
        return "writes are JSON (Content-Type: application/json)"
    return None


def data_file(data_dir: Path, url_path: str) -> Path | None:
    """The image under DATA that `url_path` (still URL-quoted) names, or None (served as 404)."""
    rel = safe_relative(unquote(url_path))
    if rel is None or "\x00" in rel:
        return None
    root = data_dir.resolve()
    try:
        target = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or not target.is_file() or target.suffix.lower() not in IMAGE_TYPES:
        return None
    return target
