"""URLs in the config: never with credentials in them, redacted when shown."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic_core import PydanticCustomError

URL_CREDENTIALS = "url_credentials"
"""The pydantic error type of a URL with credentials: its value is shown redacted."""

_SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "sslpassword",
        "token",
        "access_token",
        "auth_token",
        "api_key",
        "apikey",
        "api-key",
        "secret",
        "client_secret",
    }
)
"""Query parameters that carry a secret."""


def check_url_credentials(value: str, where: str, *, allow_user: bool = False) -> str:
    """Refuse a URL that carries a password (``user:pw@``), a user name (unless
    ``allow_user``) or a secret query parameter; the message says where it goes instead.

    A URL is logged, shown by the doctor and, over ``http://``, sent in clear: a secret in it
    leaks. Secrets go in the config's secret tables (``{ credential = "NAME" }``).
    """
    url = urlsplit(value)
    query = parse_qsl(url.query, keep_blank_values=True)
    found = []
    if url.password is not None:
        found.append("a password")
    elif url.username is not None and not allow_user:
        found.append("a user name")
    keys = sorted({key for key, _ in query if key.lower() in _SECRET_QUERY_KEYS})
    if keys:
        found.append(f"the secret query parameter(s) {', '.join(keys)}")
    if found:
        raise PydanticCustomError(
            URL_CREDENTIALS,
            "credentials in the URL are refused ({found}): URLs are logged and shown, and "
            "may travel in clear; {where}",
            {"found": " and ".join(found), "where": where},
        )
    return value


def redact_url(value: object) -> object:
    """``value`` with the password and secret query values of a URL replaced by ``***``."""
    if not isinstance(value, str):
        return value
    try:
        url = urlsplit(value)
        netloc = url.netloc
        if url.password is not None or url.username is not None:
            host = netloc.rpartition("@")[2]
            user = url.username or ""
            netloc = f"{user}:***@{host}" if url.password is not None else f"***@{host}"
        query = "&".join(
            f"{k}=***" if k.lower() in _SECRET_QUERY_KEYS else f"{k}={v}"
            for k, v in parse_qsl(url.query, keep_blank_values=True)
        )
        return urlunsplit((url.scheme, netloc, url.path, query, ""))
    except ValueError:
        return "***"
