"""A backup is data, never code: the SQL a dump loads is read through before any of it runs.

A manifest proves the files are the ones dbkit wrote, not that they are harmless: anyone who
can write the backups folder could add ``\\! rm -rf ~`` or ``\\connect <another database>``
(psql meta-commands), or ``COPY ... TO PROGRAM`` (SQL the server runs as its OS user) and
update the checksums. So the script a dump loads (a plain dump as psql reads it; an archive as
``pg_restore -f -`` writes it) is scanned first, the way psql itself splits it (quotes,
dollar-quoted bodies, comments, ``COPY ... FROM stdin`` data up to ``\\.``), and refused when
it holds anything pg_dump of a normal database does not write:

- any psql meta-command (a backslash outside quotes), except pg_dump's own ``\\restrict KEY``
  first and ``\\unrestrict KEY`` last (17.6+, 16.10+, 15.14+, 14.19+);
- any statement whose form pg_dump does not write (``COPY`` other than ``FROM stdin``, a
  ``SELECT`` other than pg_dump's own catalog calls, ``DO``, ``CALL``, roles, databases,
  ``ALTER SYSTEM``, ``SET ROLE``, ``LOAD`` …);
- a function in language C or in an untrusted language (created as a superuser, it can run
  anything the server's OS user can, and an index or CHECK using it runs it during the load);
  pg_dump writes these for a database that has them, so the setting ``TRUST_LANGUAGES``
  (``plpython3u,c``) names the ones the user vouches for. A backup is taken either way.

The loader then runs psql in its restricted mode with a key of its own (``\\restrict``), so a
meta-command the scan missed is refused by psql too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from dbkit.errors import BackupCorrupt


class NotData(BackupCorrupt):
    """The SQL a backup would load holds something pg_dump never writes: it is not run."""

# The statement forms pg_dump (and pg_restore -f) write, on the statement's text with every
# quoted part, dollar-quoted body and comment taken out and spaces collapsed (upper case).
_SETTINGS = ("STATEMENT_TIMEOUT|LOCK_TIMEOUT|IDLE_IN_TRANSACTION_SESSION_TIMEOUT|"
             "TRANSACTION_TIMEOUT|CLIENT_ENCODING|CHECK_FUNCTION_BODIES|XMLOPTION|"
             "CLIENT_MIN_MESSAGES|ROW_SECURITY|DEFAULT_TABLESPACE|DEFAULT_TABLE_ACCESS_METHOD|"
             "DEFAULT_WITH_OIDS")
_ALLOWED = [re.compile(p) for p in (
    rf"SET ({_SETTINGS}) = [^;]*$",
    r"SET STANDARD_CONFORMING_STRINGS = ON$",  # off would change what a quote means
    r"SELECT PG_CATALOG\.SET_CONFIG\( '' , '' , FALSE\)$",
    r"SELECT PG_CATALOG\.SETVAL\( '' , -?\d+, (TRUE|FALSE)\)$",
    r"SELECT PG_CATALOG\.LO_CREATE\( '' \)$",
    r"SELECT PG_CATALOG\.LO_OPEN\( '' , \d+\)$",
    r"SELECT PG_CATALOG\.LOWRITE\(0, '' \)$",
    r"SELECT PG_CATALOG\.LO_CLOSE\(0\)$",
    r"SELECT PG_CATALOG\.BINARY_UPGRADE_\w+\(",
    r"CREATE (?!ROLE\b|USER (?!MAPPING\b)|GROUP\b|DATABASE\b|TABLESPACE\b|SUBSCRIPTION\b|"
    r"EVENT TRIGGER\b|TEMP\b|TEMPORARY\b)",
    r"ALTER (?!SYSTEM\b|ROLE\b|USER (?!MAPPING\b)|GROUP\b|DATABASE\b|TABLESPACE\b|"
    r"SUBSCRIPTION\b|EVENT TRIGGER\b)",
    r"COMMENT ON ", r"SECURITY LABEL ", r"GRANT ", r"REVOKE ",
    r"REFRESH MATERIALIZED VIEW ",
    r"COPY [^()]+( \([^()]*\))? FROM STDIN$",
    r"BEGIN$", r"COMMIT$",
)]
# Forms inside an allowed statement that pg_dump never writes: a temporary object, a table
# made from a query, an unquoted language name being the only form it writes.
_NEVER = [(re.compile(p), what) for p, what in (
    (r"\bPG_TEMP(_\d+)?\b", "a temporary object"),
    (r"^CREATE (UNLOGGED )?TABLE [^(]*\bAS\b", "a table made from a query"),
    (r"^CREATE (UNLOGGED )?TABLE .*\) AS (SELECT|WITH|VALUES|TABLE|EXECUTE)\b",
     "a table made from a query"),
    (r"\bLANGUAGE (''|\"\")", "a function whose language name is quoted"),
    (r"\bPROGRAM ''", "a program for the server to run"),
)]
_COPY_IN = re.compile(r"^COPY\b.*\bFROM STDIN$")
_FUNCTION = re.compile(r"^CREATE (OR REPLACE )?(FUNCTION|PROCEDURE|AGGREGATE)\b")
_LANGUAGE = re.compile(r"\bLANGUAGE (\w+)")
# Languages a non-superuser may not create functions in: they reach the operating system.
_UNTRUSTED = {"C", "INTERNAL", "PLPYTHONU", "PLPYTHON3U", "PLPYTHON2U", "PLPERLU", "PLTCLU",
              "PLRUBYU", "PLV8U", "PLSHU", "PLSH", "PLLUAU", "PLRU", "PLR", "PLJAVAU"}
_RESTRICT = re.compile(rb"^\\(restrict|unrestrict) ([A-Za-z0-9]+)\s*$")
# The server's identifiers: ASCII letters, digits, _ and $ (not first), and any non-ASCII
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_TAG = re.compile(r"\$([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")


TRUST = "TRUST_LANGUAGES"  # the setting naming the languages the user vouches for
ALL = "*"  # in ``trust``: TRUST_BACKUPS=1, every backup is the user's own


@dataclass
class Finding:
    line: int
    what: str
    own: bool = True  # pg_dump never writes it (else: it may, but it can reach the OS)


@dataclass
class Deferred:
    """A statement the loading role cannot run (``asrole``), of a form that runs no code."""
    line: int
    kind: str  # "owner", "default privileges", "extension comment", "privileges"
    text: str  # as written, without its ;


@dataclass
class Scanned:
    key: bytes | None = None  # pg_dump's own \restrict key
    deferred: list[Deferred] = field(default_factory=list)
    languages: set[str] = field(default_factory=set)  # untrusted ones the user trusts
    trusted: bool = False  # TRUST_BACKUPS=1: the user vouches for every backup (ALL below)

    def skipped_lines(self) -> set[int]:
        """Lines the loading role must not run (the superuser runs them after it)."""
        return {d.line for d in self.deferred}


_ROLE_NAME = r'(""|[A-Z0-9_$]+)'
_DEFER = [(re.compile(p), kind) for p, kind in (
    (r"^ALTER (TABLE|SEQUENCE|VIEW|MATERIALIZED VIEW|FOREIGN TABLE|FUNCTION|PROCEDURE|ROUTINE|"
     r"AGGREGATE|TYPE|DOMAIN|SCHEMA|COLLATION|CONVERSION|TEXT SEARCH CONFIGURATION|"
     r"TEXT SEARCH DICTIONARY|OPERATOR|OPERATOR CLASS|OPERATOR FAMILY|LARGE OBJECT|PUBLICATION|"
     r"SERVER|FOREIGN DATA WRAPPER|STATISTICS|LANGUAGE) [^,;]+ OWNER TO " + _ROLE_NAME + "$",
     "owner"),
    (r"^ALTER DEFAULT PRIVILEGES FOR (ROLE|USER) [^;]+$", "default privileges"),
    (r"^COMMENT ON EXTENSION " + _ROLE_NAME + r" IS ''$", "extension comment"),
    (r"^(GRANT|REVOKE) [^;]+ ON [^;]+ (TO|FROM) [^;]+$", "privileges"),
)]


class _Scanner:
    """psql's view of a script, line by line: what is a statement, what is data."""

    def __init__(self, trust: Collection[str] = ()) -> None:
        self.trust = {lang.upper() for lang in trust}
        self.all_trusted = ALL in trust
        self.lineno = 0
        self.copy_data = False
        self.quote: str | None = None  # "'", "E'", '"', "$tag$", "/*" (nested: depth)
        self.depth = 0
        self.skeleton: list[str] = []
        self.start = 0  # the line the statement began on
        self.restrict_key: bytes | None = None
        self.unrestricted = False
        self.seen_statement = False
        # psql ends a statement at a ; outside parentheses and outside the BEGIN ATOMIC …
        # END of a CREATE FUNCTION/PROCEDURE (psqlscan.l: paren_depth, begin_depth)
        self.parens = 0
        self.words: list[str] = []
        self.begins = 0
        self.scanned = Scanned()
        # 'a' <newline> 'b' is one string for the server and psql, the second piece of the
        # kind of the first (an E'' goes on taking backslash escapes): what closed last,
        # and whether a line break came since
        self.closed: str | None = None
        self.broke = False
        self.ended: list[str] = []  # the statements (skeletons) that ended on this line

    def feed(self, raw: bytes) -> Iterator[Finding]:
        self.lineno += 1
        if b"\0" in raw:  # psql drops what follows a NUL in its buffer: the two would part
            yield Finding(self.lineno, "a NUL byte")
            return
        if self.copy_data:
            if raw.rstrip(b"\r\n") == b"\\.":
                self.copy_data = False
            return
        if self.unrestricted and raw.strip():
            yield Finding(self.lineno, "text after pg_dump's closing \\unrestrict line")
            return
        if self.quote is None and not "".join(self.skeleton).strip():
            match = _RESTRICT.match(raw)
            if match:
                yield from self._restrict(match)
                return
        line = raw.decode("utf-8", errors="replace")
        self.ended = []
        yield from self._lex(line)
        for skeleton in self.ended:
            yield from self._defer(skeleton, line, len(self.ended))

    def _defer(self, skeleton: str, line: str, ended: int) -> Iterator[Finding]:
        """A statement the superuser runs apart: it must be alone on its line, as pg_dump
        writes it, so the loading role's copy can leave exactly that line out."""
        flat = skeleton
        while "(" in flat:  # a signature's commas are not ALTER TABLE's list of actions
            unnested = re.sub(r"\([^()]*\)", "", flat)
            if unnested == flat:
                break
            flat = unnested
        for pattern, kind in _DEFER:
            if not pattern.match(flat if kind == "owner" else skeleton):
                continue
            text = line.strip()
            if ended != 1 or self.start != self.lineno or not text.endswith(";") \
                    or "".join(self.skeleton).strip():
                yield Finding(self.lineno, f"{_shown(skeleton)} not alone on its line")
                return
            if not _plain_form(text, quoted=kind == "extension comment"):
                yield Finding(self.lineno, f"{_shown(skeleton)} not in the plain form pg_dump "
                              "writes (a statement the superuser runs holds no escapes, dollar "
                              "quotes, comments or line breaks)")
                return
            self.scanned.deferred.append(Deferred(self.lineno, kind, text[:-1].rstrip()))
            return

    def _restrict(self, match: re.Match[bytes]) -> Iterator[Finding]:
        kind, key = match.group(1), match.group(2)
        if kind == b"restrict" and self.restrict_key is None and not self.seen_statement:
            self.restrict_key = key
        elif kind == b"unrestrict" and key == self.restrict_key:
            self.unrestricted = True
        else:
            yield Finding(self.lineno, f"a psql \\{kind.decode()} line where pg_dump writes none")

    def _lex(self, line: str) -> Iterator[Finding]:
        i, n = 0, len(line)
        if not self.skeleton or not "".join(self.skeleton).strip():
            self.start = self.lineno
        self.broke = self.closed is not None
        while i < n:
            c = line[i]
            if self.quote is not None:
                i = self._in_quote(line, i)
                continue
            if self.closed is not None:
                if c == "'" and self.broke:
                    self.quote, self.closed = self.closed, None  # the same string goes on
                    i += 1
                    continue
                if c in "\r\n":
                    self.broke = True
                    i += 1
                    continue
                if c in " \t\f\v" or (c == "-" and line.startswith("--", i)):
                    pass  # still between the pieces: a -- comment to the line's end counts
                else:
                    self.closed = None
            if c == "-" and line.startswith("--", i):
                # to the end of the line, and for the server a \r ends it too
                cr = line.find("\r", i)
                if cr < 0:
                    break
                i = cr + 1
                self.broke = self.closed is not None
                continue
            if c == "/" and line.startswith("/*", i):
                self.quote, self.depth = "/*", 1
                i += 2
                continue
            if c == "\\":
                yield Finding(self.lineno, f"a psql meta-command ({_shown(line[i:])})")
                return
            word = _WORD.match(line, i)
            if word:
                end = word.end()
                if end < n and line[end] == "'" and word.group(0) in ("E", "e"):
                    self.quote = "E'"  # E'…': backslash escapes
                    self.skeleton.append(" '' ")
                    i = end + 1
                    continue
                self._word(word.group(0))
                self.skeleton.append(word.group(0))
                i = end
                continue
            if c == "'":
                self.quote = "'"
                self.skeleton.append(" '' ")
                i += 1
                continue
            if c == '"':
                self.quote = '"'
                self.skeleton.append(' "" ')
                i += 1
                continue
            if c == "$":
                match = _TAG.match(line, i)
                if match:
                    self.quote = match.group(0)
                    self.skeleton.append(" $$ ")
                    i = match.end()
                    continue
            if c == "(":
                self.parens += 1
            elif c == ")":
                self.parens = max(0, self.parens - 1)
            elif c == ";" and self.parens == 0 and self.begins == 0:
                yield from self._statement()
                i += 1
                continue
            self.skeleton.append(c)
            i += 1
        self.skeleton.append(" ")

    def _word(self, word: str) -> None:
        """psql's count of BEGIN/CASE … END inside a CREATE FUNCTION/PROCEDURE."""
        self.words.append(word.upper())
        head = self.words[:4]
        routine = head[:1] == ["CREATE"] and (
            head[1:2] in (["FUNCTION"], ["PROCEDURE"])
            or head[1:3] == ["OR", "REPLACE"] and head[3:4] in (["FUNCTION"], ["PROCEDURE"]))
        if not routine or len(self.words) <= 4:
            return
        if self.words[-1] in ("BEGIN", "CASE"):
            self.begins += 1
        elif self.words[-1] == "END" and self.begins > 0:
            self.begins -= 1

    def _in_quote(self, line: str, i: int) -> int:
        q = self.quote
        assert q is not None
        if q == "/*":
            if line.startswith("*/", i):
                self.depth -= 1
                if self.depth == 0:
                    self.quote = None
                return i + 2
            if line.startswith("/*", i):
                self.depth += 1
                return i + 2
            return i + 1
        if q in ("'", "E'", '"'):
            close = '"' if q == '"' else "'"
            if q == "E'" and line[i] == "\\":
                return i + 2
            if line[i] == close:
                if line.startswith(close * 2, i):
                    return i + 2
                self.quote = None
                if q != '"':
                    self.closed, self.broke = q, False
            return i + 1
        end = line.find(q, i)  # a dollar quote: its tag again
        if end < 0:
            return len(line)
        self.quote = None
        return end + len(q)

    def _statement(self) -> Iterator[Finding]:
        text = re.sub(r"\s+", " ", "".join(self.skeleton)).strip().upper()
        self.skeleton, self.words, self.parens, self.begins = [], [], 0, 0
        if not text:
            return
        self.seen_statement = True
        if not any(p.match(text) for p in _ALLOWED):
            yield Finding(self.start, f"a statement pg_dump does not write ({_shown(text)})")
            return
        for pattern, what in _NEVER:
            if pattern.search(text):
                yield Finding(self.start, f"{what} ({_shown(text)})")
                return
        if _FUNCTION.match(text):
            for lang in _LANGUAGE.findall(text):
                if lang in _UNTRUSTED and lang not in self.trust and not self.all_trusted:
                    yield Finding(self.start, f"a function in language {lang.lower()}, which "
                                  "can reach the operating system (if it is yours, "
                                  f"{TRUST}={lang.lower()} lets dbkit load it)", own=False)
                elif lang in _UNTRUSTED:
                    self.scanned.languages.add(lang.lower())
        self.ended.append(text)
        if _COPY_IN.match(text):
            self.copy_data = True

    def end(self) -> Iterator[Finding]:
        if self.quote is not None and self.quote != "/*":
            yield Finding(self.lineno, "a quote that never closes")
        elif "".join(self.skeleton).strip():
            yield from self._statement()
        if self.restrict_key is not None and not self.unrestricted:
            yield Finding(self.lineno, "pg_dump's \\restrict line without its \\unrestrict")


def _plain_form(text: str, *, quoted: bool) -> bool:
    """Nothing in ``text`` (one line) that two lexers could read differently: outside
    double-quoted names no backslash, dollar, comment, carriage return, and no string but,
    where ``quoted``, plain ones."""
    rest = re.sub(r'"(?:[^"]|"")*"', '""', text)
    if quoted:
        rest = re.sub(r"(?<![A-Za-z0-9_$])'(?:[^'\\\r]|'')*'", " S ", rest)
    return not re.search(r"[\\$'\r]|--|/\*", rest)


def _shown(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"


def require_harmless(lines: Iterable[bytes], what: str,
                     trust: Collection[str] = ()) -> Scanned:
    """Refused (one line) at the first thing pg_dump would not have written; else what the
    load needs to know: pg_dump's own ``\\restrict`` key, the statements the superuser
    runs apart (``asrole``), the trusted untrusted languages it creates functions in."""
    scanner = _Scanner(trust)
    for found in _all(scanner, lines):
        why = "pg_dump never writes this, so dbkit" if found.own else "dbkit"
        raise NotData(f"{what}, line {found.line}: {found.what}; {why} will not load it (a "
                      "backup is data, never code); nothing was run and nothing was changed")
    scanner.scanned.key = scanner.restrict_key
    scanner.scanned.trusted = scanner.all_trusted
    return scanner.scanned


def _all(scanner: _Scanner, lines: Iterable[bytes]) -> Iterator[Finding]:
    for raw in lines:
        yield from scanner.feed(raw)
    yield from scanner.end()

