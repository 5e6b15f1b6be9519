"""Guards for the ERP's SQL source: the query and the login are checked before anything is sent.

Pure: no I/O. The ERP database is the factory's system of record and Lineside only ever
reads from it; these guards are the first of several read-only layers (after them come a
read-only session and a read-only database role; docs/reference/production-pipeline.md, "Safety").
A refused query or login raises :class:`ErpRefused` with the precise reason, and is never
retried: it is a configuration problem, not a transient one.

The query is tokenised, not matched with regular expressions, so that a keyword inside a
string literal (``Description = 'UPDATE later'``) is not a false positive and ``Updated``
is not mistaken for ``UPDATE``. Because quoting rules differ between databases (backslash
escapes in MySQL and PostgreSQL ``E''`` strings, ``$$`` dollar quoting, ``[brackets]``), the
tokeniser refuses the constructs on which two dialects could disagree about where a literal
ends, rather than guessing one dialect; and a ``;`` is refused even inside a literal,
because a literal must never be the thing that hides a second statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from gateway.core.errors import ErpRefused

FORBIDDEN_KEYWORDS = frozenset(
    {
        "DROP",
        "DELETE",
        "INSERT",
        "UPDATE",
        "ALTER",
        "TRUNCATE",
        "EXEC",
        "EXECUTE",
        "MERGE",
        "GRANT",
        "REVOKE",
        "CREATE",
        "REPLACE",
        "CALL",
        "COPY",
        # SELECT ... INTO creates a table in PostgreSQL and SQL Server: a write disguised
        # as a SELECT.
        "INTO",
    }
)
"""Write and admin keywords, matched as whole words, case-insensitively."""

FORBIDDEN_PREFIXES = ("xp_", "sp_")
"""SQL Server extended and system procedures (``xp_cmdshell``, ``sp_executesql``)."""

ADMIN_LOGINS = frozenset({"sa", "admin", "administrator", "postgres", "root", "dba"})
"""Logins that can write or administer; the gateway must use a dedicated read-only login."""

PLACEHOLDER = "watermark"
"""The only bind parameter: ``:watermark``, the last ``Updated`` already seen."""

Paramstyle = Literal["pyformat", "format", "qmark", "named", "numeric"]
"""DB-API 2.0 paramstyles (PEP 249) that :func:`render_query` can produce."""

# Characters refused outside literals, with the reason: each one opens a construct whose
# extent some dialect sees differently from this tokeniser, or a driver-side placeholder
# or escape that would bypass ``:watermark``.
_REFUSED_CHARS = {
    "$": "'$' (dollar quoting or positional parameters) is not allowed",
    "`": "backtick quoting is not allowed (use double quotes)",
    "?": "'?' placeholders are not allowed; use :watermark",
    "{": "ODBC escape sequences ('{') are not allowed",
    "}": "ODBC escape sequences ('}') are not allowed",
}
_TWO_CHAR_OPERATORS = frozenset({"::", ">=", "<=", "<>", "!=", "||"})
_KEY_TERMINATORS = frozenset({"ASC", "DESC", "NULLS", "LIMIT", "OFFSET", "FETCH", "FOR"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["word", "number", "string", "ident", "param", "op"]
    text: str
    start: int
    end: int

    @property
    def name(self) -> str:
        """The identifier as the database sees it, without quotes."""
        if self.kind == "ident":
            inner = self.text[1:-1]
            return inner.replace('""', '"') if self.text[0] == '"' else inner
        return self.text


def _refuse(reason: str) -> ErpRefused:
    return ErpRefused(f"ERP query refused: {reason}")


def _strip_terminator(sql: str) -> str:
    """Drop trailing whitespace and at most one trailing ``;``."""
    body = sql.rstrip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _tokenise(sql: str) -> list[_Token]:
    """Split ``sql`` (without its terminator) into tokens; raise on anything ambiguous."""
    if "\\" in sql:
        # Backslash escapes exist in MySQL strings and PostgreSQL E'' strings, so a
        # literal like 'x\'' ends in different places for different databases.
        raise _refuse("backslashes are not allowed (escape rules differ between databases)")
    tokens: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in " \t\r\n":
            i += 1
        elif ord(ch) < 32 or ord(ch) == 127:
            raise _refuse(f"control character {ch!r} at offset {i}")
        elif ch in "'\"":
            end = _quoted_end(sql, i, ch)
            text = sql[i:end]
            if ch == "'" and ";" in text:
                raise _refuse(
                    f"';' inside the string literal at offset {i} is not allowed "
                    "(a literal must not be able to hide a second statement)"
                )
            tokens.append(_Token("string" if ch == "'" else "ident", text, i, end))
            i = end
        elif ch == "[":
            # SQL Server bracketed identifier; a quote inside would desynchronise the
            # literal tracking between this tokeniser and a dialect without brackets.
            end = sql.find("]", i + 1)
            if end < 0:
                raise _refuse(f"unterminated '[' identifier at offset {i}")
            inner = sql[i + 1 : end]
            if any(c in inner for c in "'\";["):
                raise _refuse(f"quote or ';' inside the [identifier] at offset {i}")
            tokens.append(_Token("ident", sql[i : end + 1], i, end + 1))
            i = end + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i) or ch == "#":
            marker = "#" if ch == "#" else sql[i : i + 2]
            raise _refuse(f"comment '{marker}' at offset {i} (comments can hide tricks)")
        elif ch == ";":
            raise _refuse(f"stacked statements: ';' at offset {i} is followed by more SQL")
        elif ch in _REFUSED_CHARS:
            raise _refuse(f"{_REFUSED_CHARS[ch]} (offset {i})")
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = _word_end(sql, i + 1)
            tokens.append(_Token("param", sql[i:end], i, end))
            i = end
        elif ch.isalpha() or ch == "_":
            end = _word_end(sql, i)
            tokens.append(_Token("word", sql[i:end], i, end))
            i = end
        elif ch.isdigit():
            end = i
            while end < n and (sql[end].isalnum() or sql[end] == "."):
                end += 1
            tokens.append(_Token("number", sql[i:end], i, end))
            i = end
        else:
            width = 2 if sql[i : i + 2] in _TWO_CHAR_OPERATORS else 1
            tokens.append(_Token("op", sql[i : i + width], i, i + width))
            i += width
    return tokens


def _quoted_end(sql: str, start: int, quote: str) -> int:
    """Index just past the literal or identifier opened at ``start`` (doubled quote escapes)."""
    i = start + 1
    while True:
        j = sql.find(quote, i)
        if j < 0:
            kind = "string literal" if quote == "'" else "quoted identifier"
            raise _refuse(f"unterminated {kind} at offset {start}")
        if sql.startswith(quote * 2, j):
            i = j + 2
            continue
        return j + 1


def _word_end(sql: str, start: int) -> int:
    end = start
    while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
        end += 1
    return end


def _is_word(token: _Token | None, *words: str) -> bool:
    return token is not None and token.kind == "word" and token.text.upper() in words


def _is_op(token: _Token | None, *ops: str) -> bool:
    return token is not None and token.kind == "op" and token.text in ops


def _name_before(tokens: list[_Token], index: int) -> list[_Token]:
    """The dotted name (``r."Updated"``) ending just before ``tokens[index]``, or []."""
    parts: list[_Token] = []
    i = index - 1
    while i >= 0 and tokens[i].kind in ("word", "ident"):
        parts.insert(0, tokens[i])
        if i >= 1 and _is_op(tokens[i - 1], "."):
            i -= 2
        else:
            break
    return parts


def _check_star(tokens: list[_Token]) -> None:
    for k, token in enumerate(tokens):
        if not _is_op(token, "*"):
            continue
        before = tokens[k - 1] if k else None
        after = tokens[k + 1] if k + 1 < len(tokens) else None
        # A star right after SELECT/DISTINCT/ALL, a comma or a dot is a column wildcard
        # (SELECT *, SELECT t.*); one followed by FROM, a comma or the end of the query
        # is too (SELECT TOP 10 *). Multiplication and COUNT(*) are neither.
        if (
            _is_word(before, "SELECT", "DISTINCT", "ALL")
            or _is_op(before, ",", ".")
            or after is None
            or _is_word(after, "FROM")
            or _is_op(after, ",")
        ):
            shown = "t.*" if _is_op(before, ".") else "SELECT *"
            raise _refuse(
                f"{shown} at offset {token.start}: name the columns explicitly "
                "(a schema change must not silently change what is read)"
            )


def _watermark_name(tokens: list[_Token]) -> list[_Token]:
    """Check the ``<column> > :watermark`` comparison and return the column's name parts."""
    params = [k for k, t in enumerate(tokens) if t.kind == "param"]
    for k in params:
        if tokens[k].text[1:] != PLACEHOLDER:
            raise _refuse(f"unknown placeholder {tokens[k].text}; only :{PLACEHOLDER} is bound")
    if not params:
        raise _refuse(f"the :{PLACEHOLDER} placeholder is missing (incremental reads only)")
    if len(params) > 1:
        raise _refuse(f":{PLACEHOLDER} must appear exactly once")
    k = params[0]
    if not _is_op(tokens[k - 1], ">"):
        raise _refuse(
            f"write the comparison as '<updated column> > :{PLACEHOLDER}' "
            "(strictly greater: the last row seen is not fetched again)"
        )
    name = _name_before(tokens, k - 1)
    before = _at(tokens, k - 1 - (2 * len(name) - 1) - 1)
    if not name or (before is not None and before.kind == "op" and before.text != "("):
        # An expression (Updated::date, Updated + 1) would defeat the index and make the
        # watermark mean something other than the column's value.
        raise _refuse(f"'> :{PLACEHOLDER}' must follow the updated column's name itself")
    return name


def _check_order_by(tokens: list[_Token], column: str) -> None:
    depth, order_at = 0, -1
    for k, token in enumerate(tokens):
        if _is_op(token, "("):
            depth += 1
        elif _is_op(token, ")"):
            depth -= 1
        elif depth == 0 and _is_word(token, "ORDER") and _is_word(_at(tokens, k + 1), "BY"):
            order_at = k + 2
    if order_at < 0:
        raise _refuse(f"ORDER BY {column} is missing (rows must arrive in watermark order)")
    end = order_at
    while (
        end < len(tokens)
        and not _is_op(tokens[end], ",")
        and not _is_word(tokens[end], *_KEY_TERMINATORS)
    ):
        end += 1
    key = _name_before(tokens, end)
    if (
        not key
        or _at(tokens, order_at) is not key[0]
        or key[-1].name.casefold() != column.casefold()
    ):
        raise _refuse(f"the first ORDER BY key must be the updated column {column}")
    if _is_word(_at(tokens, end), "DESC"):
        raise _refuse(f"ORDER BY {column} must be ascending")


def _at(tokens: list[_Token], index: int) -> _Token | None:
    return tokens[index] if 0 <= index < len(tokens) else None


def check_query(sql: str) -> None:
    """Refuse ``sql`` unless it is one safe, incremental SELECT; raise :class:`ErpRefused`.

    Accepted: a single ``SELECT`` of explicit columns (one trailing ``;`` allowed) with
    exactly one ``<column> > :watermark`` and ``ORDER BY <column>`` (ascending) as the first
    sort key. Refused: other statements, stacked statements, comments, ``SELECT *`` and
    ``t.*``, write/admin keywords as whole words outside literals and quoted identifiers,
    ``xp_``/``sp_`` procedures, ``SELECT ... INTO``, and dialect-ambiguous quoting.
    """
    tokens = _tokenise(_strip_terminator(sql))
    if not tokens:
        raise _refuse("the query is empty")
    if not _is_word(tokens[0], "SELECT"):
        raise _refuse(
            f"must be a single SELECT statement, not one starting with {tokens[0].text!r}"
        )
    for token in tokens:
        if token.kind == "word" and token.text.upper() in FORBIDDEN_KEYWORDS:
            raise _refuse(f"keyword {token.text.upper()} at offset {token.start} is not allowed")
        if token.kind in ("word", "ident") and token.name.lower().startswith(FORBIDDEN_PREFIXES):
            raise _refuse(f"system procedure {token.name!r} at offset {token.start}")
    _check_star(tokens)
    column = _watermark_name(tokens)[-1].name
    _check_order_by(tokens, column)


def watermark_column(sql: str) -> str:
    """The name (unquoted, last part) of the column compared with ``:watermark``.

    ``sql`` must already have passed :func:`check_query`.
    """
    return _watermark_name(_tokenise(_strip_terminator(sql)))[-1].name


def render_query(sql: str, paramstyle: Paramstyle) -> str:
    """``sql`` with ``:watermark`` rewritten for a DB-API driver's ``paramstyle``.

    The terminating ``;`` is dropped (a server-side cursor wraps the query in DECLARE).
    For the ``%``-based styles every literal ``%`` (``LIKE 'S%'``, modulo) is doubled,
    inside literals too, because psycopg scans the whole text for placeholders.
    ``sql`` must already have passed :func:`check_query`.
    """
    body = _strip_terminator(sql)
    replacement = {
        "pyformat": f"%({PLACEHOLDER})s",
        "format": "%s",
        "qmark": "?",
        "named": f":{PLACEHOLDER}",
        "numeric": ":1",
    }[paramstyle]
    percent = paramstyle in ("pyformat", "format")
    out: list[str] = []
    pos = 0
    for token in _tokenise(body):
        if token.kind == "param":
            gap = body[pos : token.start]
            out.append(gap.replace("%", "%%") if percent else gap)
            out.append(replacement)
            pos = token.end
    tail = body[pos:]
    out.append(tail.replace("%", "%%") if percent else tail)
    return "".join(out)


def check_login(url: str) -> None:
    """Refuse a database URL with an administrator login or a password inside it.

    The gateway must connect as a dedicated read-only login (not ``sa``, ``postgres``,
    ``root`` ...); the password comes from the configured secret, never from the URL,
    because URLs end up in logs and status pages. A URL without a user is refused too:
    the driver would fall back to the operating-system user, which may be ``root``.
    """
    try:
        parts = urlsplit(url)
        user = parts.username
        password = parts.password
    except ValueError as exc:
        raise ErpRefused(f"ERP login refused: the database URL is malformed ({exc})") from None
    query = [(key.lower(), value) for key, value in parse_qsl(parts.query)]
    if password is not None or any(key in ("password", "pwd") for key, _ in query):
        raise ErpRefused(
            "ERP login refused: the URL contains a password; put it in the password secret"
        )
    # libpq and ODBC also accept the user as a query parameter, which overrides the URL.
    users = [user] if user else []
    users += [value for key, value in query if key in ("user", "username", "uid")]
    if not users:
        raise ErpRefused("ERP login refused: the URL names no user; name the read-only login")
    for name in users:
        if name.lower() in ADMIN_LOGINS:
            raise ErpRefused(
                f"ERP login refused: {name!r} is an administrator login; "
                "use a dedicated read-only login"
            )
