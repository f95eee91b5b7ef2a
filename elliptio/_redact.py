"""Secret redaction for command lines, URLs and messages.

Everything elliptio writes into a record or an error message passes through here
first, so that no password, token or signed-URL credential is ever stored:

- `redact_argv` masks the values of secret-looking options (``--password x``,
  ``--api-key=x``), ``KEY=value`` pairs (``PASSWORD=x``, ``db.password=x``, also
  inside an element: ``--opts=a=1,token=x``), HTTP header arguments
  (``"Authorization: Bearer x"``), credentials that go by no secret name
  (``-u user:x``, ``--user=user:x``, ``mysql -px``, ``user/x@db``, ``user:x@host``,
  ``Bearer x``), the same in an element that is a command line itself, and
  credentials inside any URL in any element.
- `redact_url` masks the password in a URL's userinfo and secret query, fragment
  or path parameters (``?token=x``, ``X-Amz-Signature=x``, ``sig=x``, ``;token=x``).
- `redact_text` masks known secret strings, for messages built from backend errors.
- `has_credentials` tells whether a URL carries a password or token in its userinfo.

A name is secret when it *contains* one of `SECRET_NAME_PARTS` (case-insensitive),
so the rules err on the side of masking: ``--keyboard-layout`` is masked as well,
because it contains "key". The deliberate exceptions are "author" (``--author``,
``author_email``) and MongoDB's ``authSource`` / ``authMechanism``, which are not
treated as "auth"; "authorization" and ``authMechanismProperties`` still are.
Plain positional arguments and ordinary options such as ``--epochs 10`` are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MASK",
    "SECRET_NAME_PARTS",
    "has_credentials",
    "is_secret_name",
    "known_secrets",
    "redact_argv",
    "redact_options",
    "redact_text",
    "redact_url",
]

MASK = "***"
"""What every redacted value is replaced by."""

SECRET_NAME_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
    "apikey",
    "api_key",
    "access_key",
    "private",
    "cookie",
    "jwt",
    "bearer",
    "passphrase",
    "passcode",
    "connection_string",
    "connectionstring",
)
"""Substrings that make an option, variable or parameter name secret."""
# Words that do as a whole part of a name (``--pass``, ``db.pass``, ``FTP_PASS``,
# ``--pw``), not inside others (``--passes``, ``bypass``, ``compass``).
_SECRET_WORDS = frozenset({"pass", "pw"})

# Query parameters that carry a signature rather than a named secret (S3 / GCS
# presigned URLs, Azure SAS tokens).
_SECRET_QUERY_NAMES = frozenset({"sig", "signature"})

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Names that contain a secret part without being credentials: "author",
# "authored", "authority", MongoDB's `authSource` / `authMechanism`, a tokenizer
# and counts of tokens (`max_new_tokens`). "authorization", "authorize",
# `authMechanismProperties` (it can hold a session token) and "tokens" alone still are.
_NOT_SECRET = re.compile(
    r"author(?!i[sz])|auth_?source|auth_?mechanism(?!_?prop)"
    r"|tokeni[sz](?:er|e|ed|ation)s?(?![a-z0-9])"
    r"|(?<![a-z0-9])(?:max|min|num|n|total)_(?:new_)?tokens(?![a-z0-9])"
)

# `--name=value`, `--name`, `-name` (no short single-letter options: too ambiguous).
_OPTION = re.compile(r"(?P<prefix>--?)(?P<name>[A-Za-z][\w.\-]*)(?:(?P<eq>=)(?P<value>.*))?", re.S)
# The front of `--name=value`, `-name=value` or `NAME=value` (also Hydra-style
# `+name=value` / `++name=value`, and `--name:value`), up to the "=" or ":".
_NAME_EQ = re.compile(
    r"(?:--?(?P<option>[A-Za-z][\w.\-]*)[=:]|\+{0,2}(?P<name>[A-Za-z_][\w.\-]*)=)"
)
# `Header-Name: value`, as passed to curl-like tools with -H.
_HEADER = re.compile(r"(?P<lead>\s*)(?P<name>[A-Za-z][\w\-]*):(?P<space>\s*)(?P<value>\S.*)", re.S)

# The name of a header, option or variable, alone (``--token`` too).
_NAME = re.compile(r"-{0,2}[A-Za-z_][\w.\-]*")
# A URL inside free text: scheme://... up to whitespace, quotes or angle brackets.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# `scheme://user:password@` -- the password may contain an unescaped "@" (the last
# "@" before the path ends the userinfo) but never "/", "?" or "#".
# The password may hold "@" (up to the last one before the path) or "/" (AWS secret
# keys do; then up to the first "@"); a port (digits, then the path) is no password.
# That scan stops at the next "://": run from every "://x:" to the end of a long
# text, it took quadratic time.
# The ":" may be written "%3A" (a "user:password" quoted whole, by quote_plus);
# the user name ends at the first of them (possessive: tried at every "%3A" of a
# long text, the scan took quadratic time again).
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>://(?:[^/?#@:%\s]|%(?!3[aA]))*+(?::|%3[aA]))"
    r"(?P<password>[^/?#\s]*|(?!\d*(?:[/?#]|$))(?:(?!://)[^?#\s@])*)@"
)
# A string that starts with a scheme: a setting or an argument that is one URL
# (a JDBC URL's scheme has a prefix: 'jdbc:postgresql://').
_SCHEME_FIRST = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*(?::[A-Za-z][A-Za-z0-9+.\-]*)*://")
# A scheme with one slash or more, as in a mistyped 'mongodb:/user:pw@host'.
_SCHEME_SLASH = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:/+")
# Digits, then the path or nothing: a port, not a password.
_PORT = re.compile(r"\d+(?:[/?#]|$)")
# `http(s)://token@host`: a bare user name over HTTP is almost always a token
# (GitHub / GitLab personal access tokens in remote URLs).
_HTTP_BARE_USER = re.compile(r"(?P<head>\bhttps?://)(?P<user>[^/?#@:\s]+)@", re.I)
# `http(s)://token:@host`, `http(s)://token:x-oauth-basic@host`: the token is the
# user name and the password is empty or a fixed word (GitHub's OAuth form), so
# the user name is masked as a bare one is.
_HTTP_TOKEN_USER = re.compile(
    r"(?P<head>\bhttps?://)(?P<user>[^/?#@:\s]+):(?:x-oauth-basic)?@", re.I
)
# A name starts after a separator (or at the start): tried inside a long word, the
# match took time quadratic in its length (100 KB of JSON text: 41 s).
_PARAM = re.compile(r"(?<![^=&#;?\s])(?P<name>[^=&#;?\s]+)=(?P<value>[^&#;\s]*)")
# `name=value` after a blank or a list separator inside an argument
# (`--opts=a=1,password=x`, `"run with token=x"`); the value runs to the next blank.
_ASSIGNMENT = re.compile(
    r"(?<![^\s,;&])(?P<front>[-+]{0,2}(?P<name>[A-Za-z_][\w.\-]*)=)(?P<value>\S*)"
)
# A word of a command line given as one argument, quotes and all (an unclosed
# quote runs to the end).
_WORD = re.compile(r"""(?:[^\s'"\\]++|\\.|'[^']*+'?|"(?:[^"\\]|\\.)*+"?)++""", re.S)
# What separates the assignments of a connection string or an option list.
_LIST_SEPARATOR = re.compile(r"([;,])")
# The name of one of those assignments: words (`User Id`), maybe an option's
# (`--opts=a=1,...`) or behind a quote; never the words of a command line.
_LIST_NAME = re.compile(r"""\s*['"]?[-+]{0,2}[A-Za-z_][\w.\-]*(?: +[A-Za-z_][\w.\-]*)*\s*""")
# The credentials of a command line that go by no secret name: the value of a user
# option (`-u`, `-U`, `--user`, `--proxy-user`: curl's `user:password`) when it
# holds a ":" that starts no path or URL, and a password attached to `-p` after a
# program that takes one so: a MySQL or MariaDB client (`mysql -pSECRET`, `docker
# exec db mysqldump -pSECRET`, `mycli`), `sshpass`, 7-Zip and RAR (`7z a -pSECRET`):
# elsewhere `-p` and what follows it are a port, a path or flags (`-p8000`,
# `mkdir -pv`, `find -print`, `perl -pe`), and `-p` apart from its value is never
# the password (`ssh -p 22`, `pytest -p no:x`).
_USER_OPTION = re.compile(r"-[uU]|--(?:[\w.\-]*[_.\-])?user", re.I)
_USER_PASSWORD = re.compile(r"[^\s:]*:(?![/\\]).*", re.S)
_ATTACHED_PASSWORD = re.compile(r"-p.+", re.S)
_PASSWORD_P_PROGRAM = re.compile(
    r"(?:.*[/\\])?(?:(?:mysql|mariadb)[\w.\-]*"
    r"|(?:mycli|sshpass|7z[arz]?|7zz|(?P<rar>(?:un|win)?rar))(?:\.exe)?)",
    re.I,
)
# RAR's password that also encrypts the names (`rar a -hpSECRET`).
_RAR_PASSWORD = re.compile(r"-hp.+", re.S | re.I)
# The programs whose password is the argument after an option, as their manuals
# give it (`sshpass -p SECRET ssh h`, `zip -P SECRET x.zip f`): that option.
_PASSWORD_OPTION = {"sshpass": "-p", "zip": "-P", "unzip": "-P"}
_PROGRAM = re.compile(r"(?:.*[/\\])?(?P<name>[\w.\-]+?)(?:\.exe)?", re.I)
# A quick test for those, before the words of an argument are redacted one by one:
# each option `_redact_args` may mask a value of (`zip -P x`, `rar a -hpx` too).
_CREDENTIAL_OPTION = re.compile(
    r"(?<![^\s'\"])(?:-p\S|-P(?![^\s'\"])|-[hH][pP]\S|-[uU]|--[\w.\-]*user\b)"
)
# An Oracle login `user/password@database`, alone or after a ":" (JDBC thin URLs:
# 'jdbc:oracle:thin:scott/tiger@h:1521:orcl'); also `owner/x@ref`, over-masked.
_SLASH_LOGIN = re.compile(r"(?<![^\s:=])(?P<user>[A-Za-z_][\w$#]*/)(?P<password>[^/\s@]+)@(?=\S)")
# `user:password@host` with no scheme (pip's --proxy), as a whole value.
_BARE_USERINFO = re.compile(r"^(?P<user>[\w.\-%]+:)(?P<password>[^/\s]+)@(?=[^\s@]+$)")
# An HTTP bearer token given without its header name.
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)(?P<token>[^\s'\"]+)", re.I)
# A local path, which holds no userinfo (see `_whole_userinfo`).
# ('//u:p@h', a URL missing its scheme, is none).
_LOCAL = re.compile(r"/(?!/)|[~.\\]|[A-Za-z]:[/\\]|(?:file|local|memory):", re.I)
# Schemes with a port before a path that may hold "@" (see `_whole_userinfo`).
_PATH_AT_SCHEMES = frozenset(
    {"http", "https", "ftp", "ftps", "sftp", "ssh", "scp", "hdfs", "webhdfs", "swebhdfs"}
    | {"smb", "webdav", "dav", "davs", "ws", "wss"}
)
# `;name=value` in a URL's path, the value up to the next "/".
_PATH_PARAM = re.compile(r"(?<=;)(?P<name>[^=;/?#\s]+)=(?P<value>[^;/?#\s]*)")
# What may follow a URL shown in quotes (repr) in a message: the closing quote
# and punctuation, kept outside the mask; only at the very end of the value.
_QUOTE_TAIL = re.compile(r"['\"][:,;.)\]}>]*$")


def is_secret_name(name: str) -> bool:
    """Tell whether an option, variable or parameter name denotes a secret.

    The name is lower-cased and every run of non-alphanumeric characters becomes
    ``_`` (so ``--API-Key``, ``api.key`` and ``API_KEY`` are all alike); it is secret
    when it contains any of `SECRET_NAME_PARTS`, or ``pass`` as a whole part.

    Args:
        name: The name, with or without leading dashes.

    Returns:
        True when values under this name must be masked.
    """
    normalised = _NOT_SECRET.sub("", _NON_ALNUM.sub("_", name.lower()))
    return any(part in normalised for part in SECRET_NAME_PARTS) or bool(
        _SECRET_WORDS & set(normalised.split("_"))
    )


def _is_secret_param(name: str) -> bool:
    decoded = unquote(name)
    lowered = decoded.lower()
    return is_secret_name(decoded) or lowered in _SECRET_QUERY_NAMES or "signature" in lowered


def _mask_params(params: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match["value"] and _is_secret_param(match["name"]):
            tail = _QUOTE_TAIL.search(match["value"])
            return f"{match['name']}={MASK}{tail[0] if tail else ''}"
        return match[0]

    return _PARAM.sub(repl, params)


def redact_url(url: str, *, whole: bool = False) -> str:
    """Remove credentials from one URL.

    The password in the userinfo is masked (``mongodb://u:p@h/db`` becomes
    ``mongodb://u:***@h/db``), as is a bare user name in an ``http(s)`` URL, which
    is how access tokens are usually embedded (``https://***@github.com/o/r``).
    Query and fragment parameters whose name is secret (see `is_secret_name`) or a
    signature (``sig``, ``signature``, ``X-Amz-Signature``) get their value masked.
    Everything else, including the user name of other schemes, is kept.

    Args:
        url: Any string holding one URL; need not be valid. In free text, a blank
            ends the password.
        whole: ``url`` is the whole string, a setting or an argument: its userinfo
            runs to the last "@" (see `_whole_userinfo`), so a password holding
            blanks, "#", "?" or "/" is masked whole.

    Returns:
        The URL with its secrets replaced by ``***``.
    """
    url = _mask_token_user(url)
    span = _whole_userinfo(url) if whole else None
    if span is not None:
        url = url[: span[0]] + MASK + url[span[1] :]
    if "@" in url:  # else no userinfo, and the scans below are quadratic in its length
        url = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", url)
        url = _HTTP_BARE_USER.sub(lambda m: f"{m['head']}{MASK}@", url)
    parts = _parts(url)
    if len(parts) == 3:  # path parameters: each value ends at the next "/"
        parts[1] = _PATH_PARAM.sub(_mask_path_param, parts[1])
    parts[-1] = _mask_params(parts[-1])
    return "".join(parts)


def _mask_token_user(url: str) -> str:
    """``http(s)://***@host`` for a token given as the user name (`_HTTP_TOKEN_USER`)."""
    if "@" not in url:
        return url
    return _HTTP_TOKEN_USER.sub(lambda m: f"{m['head']}{MASK}@", url)


def _mask_path_param(match: re.Match[str]) -> str:
    if match["value"] and _is_secret_param(match["name"]):
        return f"{match['name']}={MASK}"
    return match[0]


def _parts(url: str) -> list[str]:
    """A URL cut before its path parameters (``https://h/x;token=abc``) and before
    its query or fragment: the parts after the first hold parameters."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    semi = url.find(";", 0, cut)
    return [url[:semi], url[semi:cut], url[cut:]] if semi >= 0 else [url[:cut], url[cut:]]


def _whole_userinfo(url: str, *, ports_in_paths: bool = True) -> tuple[int, int] | None:
    """Where the password of a string that is one URL and nothing else lies, read
    the way pymongo reads its URLs: the userinfo runs to the last "@", so the
    password may hold "#", "?", "/", "@" and blanks; the user name before the
    first ":" holds no "/", "?" or "#". ``None`` when there is no password."""
    # Only URLs whose paths may hold "@" (file@2x.png) after a port take
    # 'host:8080/x@y' for a port and a path; elsewhere ('mongodb://u:2024/pw@h',
    # 's3://KEY:2024/secret@bucket') "digits/" before an "@" starts a password.
    # On a command line (``ports_in_paths=False``) they are a port only when a query
    # or a fragment follows them ('host:8080/x?to=a@b'): 'https://u:2024/pw@h/x'
    # is masked, and 'https://host:8443/x@y' over-masked, rather than leaked.
    ports = url.partition(":")[0].lower() in _PATH_AT_SCHEMES
    port_needs = "" if ports_in_paths else "?#"
    scheme = _SCHEME_FIRST.match(url)
    if scheme is not None and not url[scheme.end() :].startswith("/"):
        return _userinfo_password(
            url, scheme.end(), strict=True, ports=ports, port_needs=port_needs
        )
    # A mistyped URL ('mongodb:/u:p@h', 'mongodb:///u:p@h', 'mongodb//u:p@h',
    # 'u:p@h:27017/db') is shown in the error that refuses it: what runs to its
    # last "@" is userinfo all the same.
    # A local path ('/data/10:30/a@b.csv', 'file:///x/10:30/a@b', 'C:\\x') has
    # no userinfo; in anything else ('u:2024/pw@h:27017/db', 's3:/KEY:12/34@b')
    # "digits/" starts a password.
    if _LOCAL.match(url):
        return None
    slashes = _SCHEME_SLASH.match(url)
    begin = slashes.end() if slashes else len(url) - len(url.lstrip("/"))  # '//u:p@h'
    # A user name holding "/" is a path ('data/10:30/a@b.csv'), unless the text
    # is a MongoDB URL missing its ':' ('mongodb//u:p@h').
    strict = not url.lower().startswith("mongodb")
    return _userinfo_password(url, begin, strict=strict, ports=ports, port_needs=port_needs)


def _userinfo_password(
    url: str, begin: int, *, strict: bool, ports: bool, port_needs: str
) -> tuple[int, int] | None:
    """The span of the password, up to the last "@"; ``None`` when there is none,
    or when it may be a port and a path (``ports``) that hold one of the
    characters of ``port_needs``, if any are given."""
    userinfo, at, _ = url[begin:].rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not colon:  # "user:password" quoted whole: the ":" written "%3A"
        user, colon, password = userinfo.replace("%3a", "%3A").partition("%3A")
    if not at or not colon or not password or (strict and any(c in user for c in "/?#")):
        return None
    port = ports and _PORT.match(password) and not password.isdigit()  # 'host:8080/x@y'
    if port and (not port_needs or any(c in password for c in port_needs)):
        return None
    start = begin + len(user) + len(colon)
    return start, start + len(password)


def has_credentials(url: str) -> bool:
    """Tell whether a URL carries credentials in its userinfo.

    That is a password (``s3://KEY:SECRET@bucket``, ``ftp://u:p@host``) or, over
    ``http(s)``, a bare user name, which is how access tokens are embedded. Secret
    query parameters (presigned URLs) do not count: they are meant to travel with
    the URL.

    Args:
        url: Any string holding one URL.

    Returns:
        True when `redact_url` would mask part of the URL's userinfo.
    """
    return "@" in url and bool(
        _USERINFO_PASSWORD.search(url)
        or _HTTP_BARE_USER.search(url)
        or _whole_userinfo(url) is not None
    )


def _redact_urls_in(text: str) -> str:
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m[0]), text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Mask the secrets in a command line.

    Handles ``--password=x``, ``--password x`` (the next element is masked unless
    it starts with ``--``), ``-password x``, ``PASSWORD=x``, ``+db.password=x``,
    ``"Authorization: Bearer x"``, an option whose value is one of these
    (``--conf=a.secret.key=x``, ``--header=Authorization: Bearer x``), secret
    assignments after a blank or a separator inside an element
    (``--opts=a=1,password=x``), the words of an element that is a command line
    itself (``bash -c "tool --token x"``, one level deep), and
    credentials in URLs anywhere in an element
    (``--uri=mongodb://u:p@h`` becomes ``--uri=mongodb://u:***@h``; in a URL that
    is a whole element, what runs to the last "@" is the password, even digits
    and "/" that could be a port and a path), a JDBC URL too. Credentials without
    a secret name: the value of a user option holding ":" (``-u user:x``,
    ``--user=user:x``, ``--proxy-user``, ``-U``: masked whole), a password
    attached to ``-p`` after a program that takes one so (``mysql -px``,
    ``sshpass -px``, ``7z a -px``, ``rar a -hpx``), the argument after
    ``sshpass -p`` and ``zip -P``/``unzip -P``, an Oracle login
    (``user/x@db``), ``user:x@host`` with no scheme, and ``Bearer x``. Other
    single-letter options, ``-p x`` among them elsewhere, are not masked: their meaning is
    unknown (``ssh -p 22``, ``python serve.py -p8000``).

    Args:
        argv: The command line, for instance ``sys.orig_argv``.

    Returns:
        A new list of the same length with secret values replaced by ``***``.
    """
    return _redact_args(argv, _redact_element)


def _redact_args(args: Iterable[str], element: Callable[[str], str]) -> list[str]:
    """``args`` with each one passed through ``element`` and the one after a secret
    option (``--password x``) masked."""
    result: list[str] = []
    mask_next = user_next = password_p = rar = False
    password_option = None
    for arg in args:
        if mask_next:
            mask_next = False
            if not arg.startswith("--"):
                result.append(MASK)
                continue
        if user_next:
            user_next = False
            if _USER_PASSWORD.fullmatch(arg):  # `-u bob:password`
                result.append(MASK)
                continue
        if password_p and _ATTACHED_PASSWORD.fullmatch(arg):  # `mysql -pSECRET`, `sshpass -pX`
            result.append(arg[:2] + MASK)
            continue
        if rar and _RAR_PASSWORD.fullmatch(arg):  # `rar a -hpSECRET`
            result.append(arg[:3] + MASK)
            continue
        if program := _PASSWORD_P_PROGRAM.fullmatch(arg):
            password_p = True
            rar = rar or program["rar"] is not None
        if password_option is not None and arg == password_option:  # `sshpass -p SECRET`
            result.append(arg)
            mask_next = True
            continue
        if password_option is None and (name := _PROGRAM.fullmatch(arg)):
            password_option = _PASSWORD_OPTION.get(name["name"].lower())
        result.append(element(arg))
        user_next = bool(_USER_OPTION.fullmatch(arg))
        option = _OPTION.fullmatch(arg)
        if option and not option["eq"] and is_secret_name(option["name"]):
            mask_next = True
    return result


def _redact_words(text: str) -> str:
    """An argument that is a command line itself (``bash -c "tool --token x"``,
    ``--extra-args="--password x"``): its words redacted as arguments, each
    without its quotes, one level deep."""
    words = list(_WORD.finditer(text))
    inner = [_unquoted(m[0]) for m in words]
    shown = _redact_args(inner, _redact_flat)
    out, last = [], 0
    for match, old, new in zip(words, inner, shown, strict=True):
        if new != old:
            begin = match.start() + (len(match[0]) - len(old)) // 2
            out += [text[last:begin], new]
            last = begin + len(old)
    return "".join([*out, text[last:]])


def _unquoted(word: str) -> str:
    quoted = len(word) >= 2 and word[0] == word[-1] and word[0] in "'\""
    return word[1:-1] if quoted else word


def _redact_flat(arg: str) -> str:
    return _redact_element(arg, nested=False)


def _peeled(arg: str) -> tuple[int, bool]:
    """Peel `--name=` and `name=` off the front of ``arg`` (a value may be an
    assignment or a header itself: ``--conf=spark.hadoop.fs.s3a.secret.key=x``,
    ``--header="Authorization: x"``), one match at the front each, so a long chain
    costs linear time. Where the rest starts, and whether it is a secret value
    (its name was secret)."""
    start = 0
    while match := _NAME_EQ.match(arg, start):
        start = match.end()
        if start < len(arg) and is_secret_name(match["option"] or match["name"]):
            return start, True
    return start, False


def _attached_credential(arg: str) -> int | None:
    """Where the credential of ``-ubob:pw`` or ``--user=bob:pw``
    starts in ``arg`` (see `_USER_OPTION`), or ``None``."""
    name, eq, value = arg.partition("=")
    if eq and name.startswith("--") and _USER_OPTION.fullmatch(name):
        return len(name) + 1 if _USER_PASSWORD.fullmatch(value) else None
    if arg[:2] in ("-u", "-U"):
        return 2 if _USER_PASSWORD.fullmatch(arg, 2) else None
    return None


def _redact_element(arg: str, *, nested: bool = True) -> str:
    attached = _attached_credential(arg)
    if attached is not None:
        return arg[:attached] + MASK
    start, secret = _peeled(arg)
    if secret:
        return arg[:start] + MASK
    listed = _redact_list(arg, nested=nested)
    if listed is not None:
        return listed
    head, arg = arg[:start], arg[start:]
    header = _HEADER.fullmatch(arg)
    if header and is_secret_name(header["name"]):
        return f"{head}{header['lead']}{header['name']}:{header['space']}{MASK}"
    return head + _redact_value(arg, nested=nested)


def _redact_value(value: str, *, nested: bool = True) -> str:
    """One argument or option value: JSON text as the options it holds, a URL that
    is the whole value with its whole password; else URLs inside the text, secret
    assignments after a blank or a separator (``a=1,password=x``) and, in text
    with blanks, the words of a command line (see `_redact_words`)."""
    parsed = _json_in(value)
    if parsed is not None:
        return _redact_json(value, parsed)
    if _SCHEME_FIRST.match(value):
        value = _mask_token_user(value)
        span = _whole_userinfo(value, ports_in_paths=False)
        if span is not None:
            value = value[: span[0]] + MASK + value[span[1] :]
        return redact_url(value, whole=True)
    value = _BARE_USERINFO.sub(lambda m: f"{m['user']}{MASK}@", value)
    value = _redact_urls_in(value)
    if "@" in value:
        value = _SLASH_LOGIN.sub(lambda m: f"{m['user']}{MASK}@", value)
    value = _BEARER.sub(lambda m: f"{m['scheme']}{MASK}", value)
    if nested and any(c.isspace() for c in value) and _names_secret(value):
        # Word by word, each with its assignments, so that a quoted value with
        # blanks (--password="a b") is masked whole.
        return _redact_words(value)
    # Then `&`-joined parameters (a SAS token: sv=...&sig=x).
    return _mask_params(_ASSIGNMENT.sub(_mask_assignment, value))


def _assignments(text: str) -> tuple[list[tuple[str, str]], int | None] | None:
    """Text that is a list of two assignments or more separated by ";" or ","
    (a connection string ``Server=tcp:h,1433;User Id=u;Password=a b``,
    ``--opts=a=1,password=a b``): each assignment as ``(text, separator after
    it)``, a piece without "=" taken as more of the value before it
    (``tcp:h,1433``), and the index of the first assignment whose value is
    secret; everything from that one on is its value, blanks and all, since a
    password may hold the separator too (``a,b=c``). ``None`` for any other text."""
    pieces = _LIST_SEPARATOR.split(text)
    entries: list[tuple[list[str], str]] = []  # (parts of an assignment, separator after)
    for i in range(0, len(pieces), 2):
        piece, after = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else ""
        name, eq, _ = piece.partition("=")
        if eq and not _LIST_NAME.fullmatch(name):
            return None  # e.g. words of a command line: `tool --opts=a=1,b=2`
        if eq:
            entries.append(([piece], after))
        elif entries:
            parts, before = entries[-1]
            parts += [before, piece]  # more of the value before
            entries[-1] = (parts, after)
        elif piece.strip():
            return None  # no assignment first: no such list
    if len(entries) < 2:
        return None
    found = [("".join(parts), after) for parts, after in entries]
    for index, (entry, _) in enumerate(found):
        name, _, value = entry.partition("=")
        if value.strip() and _is_list_secret(name.strip()):
            return found, index
    return found, None


def _is_list_secret(name: str) -> bool:
    """A secret name in a list of assignments: as an option's, or a signature
    (``sig``, ``SharedAccessSignature``; not ``signature_version``)."""
    lowered = name.lower()
    return is_secret_name(name) or lowered in _SECRET_QUERY_NAMES or lowered.endswith("signature")


def _list_secret(text: str) -> str | None:
    """The secret `_redact_list` masks in ``text``, its closing quote left out."""
    found = _assignments(text)
    if found is None or found[1] is None:
        return None
    entries, index = found
    rest = "".join(entry + after for entry, after in entries[index:])
    secret = rest.partition("=")[2]
    quote = _closing_quote(text)
    return secret[: -len(quote)] if quote and secret.endswith(quote) else secret


def _closing_quote(text: str) -> str:
    """The quote that ends ``text`` and closes one opened in it, or ``""``."""
    return text[-1] if text[-1:] in ("'", '"') and text.count(text[-1]) % 2 == 0 else ""


def _redact_list(text: str, *, nested: bool) -> str | None:
    """`_assignments` text with the values before the secret one redacted as
    values (``nested`` as in `_redact_value`) and the secret masked; ``None``
    for any other text."""
    found = _assignments(text)
    if found is None:
        return None
    entries, secret = found
    shown = []
    for entry, after in entries[:secret]:
        name, _, value = entry.partition("=")
        shown.append(f"{name}={_redact_value(value, nested=nested)}{after}")
    if secret is not None:
        name = entries[secret][0].partition("=")[0]
        shown.append(f"{name}={MASK}{_closing_quote(text)}")
    return "".join(shown)


def _names_secret(text: str) -> bool:
    """Whether some name or option in ``text`` may be secret: a quick test before
    its words are redacted one by one."""
    normalised = _NON_ALNUM.sub("_", text.lower())
    return any(part in normalised for part in (*SECRET_NAME_PARTS, *_SECRET_WORDS)) or bool(
        _CREDENTIAL_OPTION.search(text)
    )


def _mask_assignment(match: re.Match[str]) -> str:
    if match["value"] and _is_list_secret(match["name"]):  # sig=, ...Signature= too
        return f"{match['front']}{MASK}"
    return match[0]


def _redact_json(text: str, parsed: Any) -> str:
    """JSON text as it may be shown: as it was if it holds no secret, else its
    value with the secrets masked, written anew (a secret may be escaped in the
    text, so replacing it there could miss it)."""
    if not _option_secrets(parsed):
        return text
    return json.dumps(redact_options(parsed), ensure_ascii=False)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of known secret strings in a text by ``***``.

    Secrets shorter than 4 characters are ignored: masking them would garble the
    text without protecting anything. Longer secrets are replaced first, so a
    secret that contains another is masked whole.

    Args:
        text: A message, for instance the text of a backend exception.
        secrets: The secret values in use (passwords, tokens, keys).

    Returns:
        The text with each secret replaced.
    """
    candidates = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    if not candidates:
        return text
    pattern = re.compile("|".join(re.escape(s) for s in candidates))
    return pattern.sub(MASK, text)


def _url_passwords(url: str) -> set[str]:
    found: set[str] = set()
    if "@" in url:  # else no userinfo (see `redact_url`)
        found.update(match["password"] for match in _USERINFO_PASSWORD.finditer(url))
        span = _whole_userinfo(url)
        if span is not None:
            found.add(url[span[0] : span[1]])
        found.update(match["user"] for match in _HTTP_BARE_USER.finditer(url))
        found.update(match["user"] for match in _HTTP_TOKEN_USER.finditer(url))
    parts = _parts(url)
    for i, part in enumerate(parts[1:], start=1):
        params = _PATH_PARAM if i == 1 and len(parts) == 3 else _PARAM
        for match in params.finditer(part):
            if match["value"] and _is_secret_param(match["name"]):
                found.add(match["value"])
    return found | {unquote(s) for s in found}


def _secret_pair(value: Sequence[Any]) -> bool:
    """``("Authorization", "Bearer x")``: a header or option given as a name-value pair."""
    name = value[0] if len(value) == 2 else None
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and is_secret_name(name)


def _element_secret(arg: str) -> str | None:
    """The secret that `_redact_element` masks as a whole value: of ``--token=x``,
    ``TOKEN=x``, ``Authorization: Bearer x``, and of these as an option's value."""
    attached = _attached_credential(arg)
    if attached is not None:
        return arg[attached:]
    start, secret = _peeled(arg)
    if secret:
        return arg[start:]
    header = _HEADER.fullmatch(arg, start)
    if header and header["value"] and is_secret_name(header["name"]):
        return str(header["value"])
    return None


def _json_in(text: str) -> Any:
    """The JSON object or array a string holds (options given as JSON text), or None."""
    stripped = text.strip()
    if stripped[:1] not in ("{", "["):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def _redact_string(text: str) -> str:
    """A string of options: JSON text as the options it holds, credentials in URLs
    (quotes and all), secret ``name=value`` parameters (``...;AccountKey=x``), and
    each line that is a secret header or option (``Authorization: Bearer x``)."""
    parsed = _json_in(text)
    if parsed is not None:
        return _redact_json(text, parsed)
    text = redact_url(text, whole="\n" not in text)
    # Line by line, as arguments: a quoted value with blanks (password='a b') is
    # masked whole, parameters (...;AccountKey=x, &sig=x) as in `_redact_value`.
    return "\n".join(_redact_element(line) for line in text.split("\n"))


def _string_secrets(text: str) -> set[str]:
    """The secrets `_redact_string` masks in ``text``."""
    parsed = _json_in(text)
    found = _url_passwords(text) | (_option_secrets(parsed) if parsed is not None else set())
    if _SCHEME_FIRST.match(text):  # its password as `_redact_value` reads it, port or not
        span = _whole_userinfo(text, ports_in_paths=False)
        found.update([text[span[0] : span[1]]] if span else [])
    found.update(m["value"] for m in _PARAM.finditer(text) if _is_secret_param(m["name"]))
    found.update(m["password"] for m in _SLASH_LOGIN.finditer(text))
    found.update(m["token"] for m in _BEARER.finditer(text))
    for line in text.split("\n"):
        found.update(s for s in (_element_secret(line), _list_secret(line)) if s)
        if any(c.isspace() for c in line) and _names_secret(line):
            found |= _word_secrets(line)
    return found


def _word_secrets(text: str) -> set[str]:
    """The secrets `_redact_words` masks in ``text``: a word after a secret option,
    and the value of a secret word, with and without its quotes."""
    words = [_unquoted(m[0]) for m in _WORD.finditer(text)]
    found = {w for w, masked in zip(words, _masked_args(words), strict=True) if masked}
    for word in words:
        secret = _element_secret(word)
        if secret:
            found |= {secret, _unquoted(secret)}
    return found


def _masked_args(args: Sequence[str]) -> list[bool]:
    """Which elements of a list of strings `redact_argv` masks whole
    (``["--password", "x"]``: the ``x``)."""
    return [new == MASK != old for old, new in zip(args, redact_argv(args), strict=True)]


def _named_value(value: Mapping[Any, Any]) -> bool:
    """``{"name": "Authorization", "value": "Bearer x"}``: a header as a mapping."""
    name = value.get("name")
    return "value" in value and isinstance(name, str) and is_secret_name(name)


def _option_secrets(value: Any, key: str = "") -> set[str]:
    if isinstance(value, Mapping):
        found = set().union(*(_option_secrets(v, str(k)) for k, v in value.items()))
        return found | (_option_secrets(value["value"], "secret") if _named_value(value) else set())
    if isinstance(value, list | tuple):
        if _secret_pair(value):
            return _option_secrets(value[1], value[0])
        found = set().union(*(_option_secrets(v, key) for v in value))
        if all(isinstance(v, str) for v in value):
            found.update(v for v, masked in zip(value, _masked_args(value), strict=True) if masked)
        return found
    if isinstance(value, str):
        return {value} if is_secret_name(key) else _string_secrets(value)
    return set()


def redact_options(value: Any, key: str = "") -> Any:
    """Storage options (or any JSON-like value) as they may be shown: the values
    under a secret name at any depth, the second of a secret name-value pair
    (``["Authorization", "Bearer x"]``) or of a secret ``{"name": ..., "value":
    ...}`` mapping, the value after a secret option in a
    list of strings (``["--password", "x"]``), the value of ``Name: value``,
    ``--name=value`` and ``name=value`` with a secret name, on any line of a
    string, and passwords inside URLs become ``***``.

    Args:
        value: The options, or one value of them.
        key: The name ``value`` is stored under.
    """
    if isinstance(value, Mapping):
        named = _named_value(value)
        return {
            k: MASK if named and k == "value" else redact_options(v, str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if _secret_pair(value):
            return [value[0], MASK]
        shown = [redact_options(v, key) for v in value]
        if all(isinstance(v, str) for v in value):
            shown = [
                MASK if masked else v for v, masked in zip(shown, _masked_args(value), strict=True)
            ]
        return shown
    if is_secret_name(key) and value is not None:
        return MASK
    if isinstance(value, str) and key.endswith("_url"):  # a setting that is one URL
        value = redact_url(value, whole=True)
    return _redact_string(value) if isinstance(value, str) else value


def known_secrets(urls: Iterable[str] = (), options: Mapping[str, Any] | None = None) -> set[str]:
    """Collect the secret strings that a configuration carries, for `redact_text`.

    These are the passwords (and other secret parameters) inside ``urls``, and the
    string values of ``options`` stored under a secret name (see `is_secret_name`)
    or inside a URL, at any depth.

    Args:
        urls: Storage or catalog URLs as the user gave them.
        options: Storage options (fsspec keyword arguments).

    Returns:
        The set of secret strings; empty strings are left out.
    """
    found: set[str] = set()
    for url in urls:
        found |= _url_passwords(url)
    found |= _option_secrets(options or {})
    return found - {""}
