"""Authentication-Results (RFC 8601): what the receiving mail server concluded about DKIM, SPF and
DMARC. Anyone can write such a header into a message, so only headers stamped by an authserv-id
the caller trusts (its own MTA) are read; all others are ignored as if absent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Guards against pathological headers: a real one is a few hundred bytes with a handful of results.
_MAX_HEADER_CHARS = 16_384
_MAX_RESULTS = 64


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` statement, e.g. ``dkim=pass header.d=example.com``."""

    authserv_id: str
    method: str  # lower-case: "dkim", "spf", "dmarc", ...
    result: str  # lower-case: "pass", "fail", "none", ...
    properties: dict[str, str] = field(default_factory=dict)  # "header.d" -> "example.com" (keys lower-case)
    reason: str | None = None


@dataclass(slots=True)
class AuthenticationResults:
    """The trusted results found in a message, and whether they vouch for its From domain."""

    results: list[MethodResult] = field(default_factory=list)
    trusted_header_count: int = 0
    ignored_header_count: int = 0  # present but stamped by an authserv-id we do not trust
    from_domain: str | None = None

    def verdict(self, method: str) -> str | None:
        """The best result reported for ``method`` ("pass" wins), or None if not reported."""
        found = [r.result for r in self.results if r.method == method]
        if not found:
            return None
        return "pass" if "pass" in found else found[0]

    @property
    def dkim(self) -> str | None:
        return self.verdict("dkim")

    @property
    def spf(self) -> str | None:
        return self.verdict("spf")

    @property
    def dmarc(self) -> str | None:
        return self.verdict("dmarc")

    @property
    def from_authenticated(self) -> bool | None:
        """True when a trusted server vouches for the From domain: DMARC pass, or DKIM pass with
        ``header.d`` aligned to it, or SPF pass with an aligned ``smtp.mailfrom``. False when trusted
        results are present but none of those holds. None when no trusted header exists."""
        if self.trusted_header_count == 0:
            return None
        domain = self.from_domain
        if not domain:
            return False
        for r in self.results:
            if r.result != "pass":
                continue
            if r.method == "dmarc":
                stated = _domain_of(r.properties.get("header.from", ""))
                if not stated or stated == domain:
                    return True
            elif r.method == "dkim":
                signer = _domain_of(r.properties.get("header.d", "") or r.properties.get("header.i", ""))
                if signer and aligned(signer, domain):
                    return True
            elif r.method == "spf":
                envelope = _domain_of(r.properties.get("smtp.mailfrom", ""))
                if envelope and aligned(envelope, domain):
                    return True
        return False


def aligned(authenticated: str, from_domain: str) -> bool:
    """Relaxed alignment without a public-suffix list: the authenticated domain is the From domain or
    a parent of it. (The other direction, a subdomain signing for its parent, is refused: without the
    list we cannot tell ``evil.github.io`` from ``mail.example.com``.)"""
    authenticated = authenticated.lower().rstrip(".")
    from_domain = from_domain.lower().rstrip(".")
    if not authenticated or "." not in authenticated:
        return False
    return from_domain == authenticated or from_domain.endswith("." + authenticated)


def _domain_of(value: str) -> str:
    value = value.strip().strip("<>").lower().rstrip(".")
    return value.rsplit("@", 1)[-1] if value else ""


def parse_authentication_results(values: Iterable[str], trusted_authserv_ids: frozenset[str],
                                 from_domain: str | None) -> AuthenticationResults:
    """``values`` in header order, topmost first (the order a message carries them)."""
    trusted = {t.lower() for t in trusted_authserv_ids}
    out = AuthenticationResults(from_domain=(from_domain or "").lower() or None)
    for value in values:
        parsed = parse_header(value)
        if parsed is None:
            out.ignored_header_count += 1
            continue
        authserv_id, results = parsed
        if authserv_id not in trusted or out.trusted_header_count:
            # Only the topmost trusted header is our receiving server's: a sender can put any
            # number of look-alike headers (with our authserv-id) further down, under it.
            out.ignored_header_count += 1
            continue
        out.trusted_header_count += 1
        out.results.extend(results[:_MAX_RESULTS])
    return out


def parse_header(value: str) -> tuple[str, list[MethodResult]] | None:
    """Parse one header value into (authserv-id lower-cased, results); None if it has no authserv-id."""
    statements = _split_statements(_tokenize(value[:_MAX_HEADER_CHARS]))
    if not statements or not statements[0]:
        return None
    head = statements[0]
    if head[0] in ("=", ".", "/"):
        return None
    authserv_id = head[0].lower()
    results: list[MethodResult] = []
    for tokens in statements[1:]:
        result = _method_result(authserv_id, tokens)
        if result is not None:
            results.append(result)
    return authserv_id, results


def _method_result(authserv_id: str, tokens: list[str]) -> MethodResult | None:
    # method [ "/" version ] "=" result [ reason=value ] *( ptype "." property "=" pvalue )
    if len(tokens) == 1 and tokens[0].lower() == "none":
        return None
    if not tokens or tokens[0] in ("=", ".", "/"):
        return None
    method = tokens[0].lower()
    i = 1
    if i + 1 < len(tokens) and tokens[i] == "/":
        i += 2
    if i + 1 >= len(tokens) or tokens[i] != "=":
        return None
    result = tokens[i + 1].lower()
    i += 2
    reason: str | None = None
    properties: dict[str, str] = {}
    while i < len(tokens):
        if tokens[i].lower() == "reason" and i + 2 < len(tokens) and tokens[i + 1] == "=":
            reason = tokens[i + 2]
            i += 3
        elif i + 4 < len(tokens) and tokens[i + 1] == "." and tokens[i + 3] == "=":
            key = f"{tokens[i].lower()}.{tokens[i + 2].lower()}"
            properties.setdefault(key, tokens[i + 4])
            i += 5
        else:
            i += 1  # tolerate junk (vendors' extensions) by skipping a token
    return MethodResult(authserv_id=authserv_id, method=method, result=result, properties=properties,
                        reason=reason)


_SPECIALS = {";", "=", ".", "/"}


def _tokenize(value: str) -> list[str]:
    """Tokens of an Authentication-Results value: comments dropped, quoted strings unquoted, and the
    separators ``; = . /`` as their own tokens. A ``.`` or ``/`` inside a value that is not a
    ptype.property boundary (a domain, an address) stays part of that value."""
    tokens: list[str] = []
    buf: list[str] = []
    i, n = 0, len(value)

    def flush() -> None:
        if buf:
            tokens.append("".join(buf))
            buf.clear()

    while i < n:
        ch = value[i]
        if ch == "(":  # comment, may nest, may contain quoted-pairs
            depth = 1
            i += 1
            while i < n and depth:
                if value[i] == "\\":
                    i += 1
                elif value[i] == "(":
                    depth += 1
                elif value[i] == ")":
                    depth -= 1
                i += 1
            flush()
            continue
        if ch == '"':
            i += 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(value[i])
                i += 1
            i += 1
            continue
        if ch.isspace():
            flush()
        elif ch in (";", "="):
            flush()
            tokens.append(ch)
        else:
            buf.append(ch)
        i += 1
    flush()
    return _split_property_dots(tokens)


def _split_property_dots(tokens: list[str]) -> list[str]:
    # "header.d" directly before "=" is ptype "." property; "version/1" before "=" is method "/" version.
    out: list[str] = []
    for index, token in enumerate(tokens):
        next_is_eq = index + 1 < len(tokens) and tokens[index + 1] == "="
        if next_is_eq and "." in token and token not in _SPECIALS:
            ptype, _, prop = token.partition(".")
            out.extend([ptype, ".", prop])
        elif next_is_eq and "/" in token and token not in _SPECIALS:
            method, _, version = token.partition("/")
            out.extend([method, "/", version])
        else:
            out.append(token)
    return out


def _split_statements(tokens: list[str]) -> list[list[str]]:
    statements: list[list[str]] = [[]]
    for token in tokens:
        if token == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s] if statements[0] else []
