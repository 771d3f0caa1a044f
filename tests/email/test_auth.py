"""Authentication-Results (RFC 8601) parsing and the from_authenticated verdict."""

from __future__ import annotations

import pytest

from swarmdesk.channels.email.auth import aligned, parse_authentication_results, parse_header
from swarmdesk.channels.email.mime import parse_mail

TRUSTED = frozenset({"mx.help.example.com"})


def verdict(*headers: str, from_domain: str = "example.org", trusted: frozenset[str] = TRUSTED) -> bool | None:
    return parse_authentication_results(list(headers), trusted, from_domain).from_authenticated


def test_parses_methods_properties_reasons_and_comments() -> None:
    authserv_id, results = parse_header(
        "MX.Help.Example.COM 1; dkim=pass (2048-bit key; secure) header.d=example.org header.s=s1 "
        'header.b="ab/c+d"; spf=softfail (domain of transitioning x@y) smtp.mailfrom=bounce@example.org; '
        'dmarc=fail reason="policy says no" (p=REJECT) header.from=example.org; auth=pass smtp.auth=alice')
    assert authserv_id == "mx.help.example.com"
    assert [(r.method, r.result) for r in results] == [("dkim", "pass"), ("spf", "softfail"), ("dmarc", "fail"),
                                                       ("auth", "pass")]
    assert results[0].properties == {"header.d": "example.org", "header.s": "s1", "header.b": "ab/c+d"}
    assert results[1].properties == {"smtp.mailfrom": "bounce@example.org"}
    assert results[2].reason == "policy says no"


def test_folded_header_with_method_versions_and_odd_spacing() -> None:
    _, results = parse_header("mx.help.example.com;\r\n\tdkim/1 = pass\r\n  header.i = @example.org ;\r\n spf=none")
    assert [(r.method, r.result, r.properties) for r in results] == [
        ("dkim", "pass", {"header.i": "@example.org"}), ("spf", "none", {})]


@pytest.mark.parametrize("value", ["", ";", "   ", "; dkim=pass", "=x"])
def test_header_without_authserv_id_is_rejected(value: str) -> None:
    assert parse_header(value) is None


def test_no_result_form() -> None:
    assert parse_header("mx.help.example.com; none") == ("mx.help.example.com", [])
    assert verdict("mx.help.example.com; none") is False  # results present, nothing vouches


@pytest.mark.parametrize("header", [
    "mx.help.example.com; dmarc=pass header.from=example.org",
    "mx.help.example.com; dmarc=pass",
    "mx.help.example.com; dkim=pass header.d=example.org",
    "mx.help.example.com; dkim=pass header.i=@example.org",
    "mx.help.example.com; dkim=pass header.d=EXAMPLE.ORG.",
    "mx.help.example.com; dkim=fail header.d=example.org; dkim=pass header.d=example.org",
    "mx.help.example.com; spf=pass smtp.mailfrom=bounces@example.org",
    "mx.help.example.com; spf=pass smtp.mailfrom=example.org",
])
def test_aligned_pass_authenticates(header: str) -> None:
    assert verdict(header) is True


def test_parent_domain_signature_is_aligned_for_a_subdomain_sender() -> None:
    assert verdict("mx.help.example.com; dkim=pass header.d=example.org", from_domain="mail.example.org") is True


@pytest.mark.parametrize("header", [
    "mx.help.example.com; dkim=pass header.d=attacker.example",  # not aligned
    "mx.help.example.com; dkim=pass header.d=org",  # a bare TLD never aligns
    "mx.help.example.com; dkim=pass header.d=mail.example.org",  # a subdomain cannot vouch for its parent
    "mx.help.example.com; dkim=pass header.d=notexample.org",
    "mx.help.example.com; spf=pass smtp.mailfrom=bounce@attacker.example",
    "mx.help.example.com; spf=pass smtp.helo=mx.example.org",  # HELO is not the envelope sender
    "mx.help.example.com; dmarc=pass header.from=other.example",  # pass for a different From
    "mx.help.example.com; dkim=fail header.d=example.org; spf=softfail smtp.mailfrom=example.org; dmarc=fail",
    "mx.help.example.com; dkim=none; spf=none; dmarc=none",
    "mx.help.example.com; dkim=neutral header.d=example.org",
])
def test_failing_or_unaligned_results_do_not_authenticate(header: str) -> None:
    assert verdict(header) is False


def test_untrusted_authserv_id_is_ignored() -> None:
    assert verdict("mx.attacker.example; dmarc=pass header.from=example.org") is None
    assert verdict("mx.attacker.example; dmarc=pass", "mx.help.example.com; dmarc=fail") is False
    assert verdict("mx.help.example.com.attacker.example; dmarc=pass") is None
    assert verdict("mx.help.example.com; dmarc=pass", trusted=frozenset()) is None


def test_only_the_topmost_trusted_header_counts() -> None:
    """Our MX prepends its header; a sender can add look-alikes with our authserv-id below it."""
    results = parse_authentication_results(
        ["mx.help.example.com; dmarc=fail header.from=example.org; spf=fail smtp.mailfrom=x@example.org",
         "mx.help.example.com; dmarc=pass header.from=example.org",  # forged by the sender
         "mx.other.example; dmarc=pass"], TRUSTED, "example.org")
    assert (results.spf, results.dkim, results.dmarc) == ("fail", None, "fail")
    assert (results.trusted_header_count, results.ignored_header_count) == (1, 2)
    assert results.from_authenticated is False


def test_a_forged_pass_below_the_real_header_does_not_verify_a_spoofed_mail() -> None:
    raw = (b"Authentication-Results: mx.help.example.com; dmarc=fail header.from=example.org\r\n"
           b"Authentication-Results: mx.help.example.com; dmarc=pass header.from=example.org\r\n"
           b"From: Ana <ana@example.org>\r\nTo: support@help.example.com\r\nSubject: x\r\n"
           b"Message-ID: <f@attacker.test>\r\n\r\nchange my address\r\n")
    parsed = parse_mail(raw, trusted_authserv_ids=TRUSTED)
    assert parsed.from_authenticated is False


def test_no_header_means_unknown() -> None:
    assert verdict() is None


def test_missing_from_domain_is_never_authenticated() -> None:
    assert verdict("mx.help.example.com; dmarc=pass", from_domain="") is False


def test_pathological_input_is_bounded() -> None:
    header = "mx.help.example.com" + "; dkim=pass header.d=x.example" * 5000
    results = parse_authentication_results([header], TRUSTED, "example.org")
    assert len(results.results) <= 64
    # an unterminated comment swallows the rest of the header
    authserv_id, unterminated = parse_header("mx.help.example.com; dkim=pass (" * 1000) or ("", [])
    assert [(r.method, r.result) for r in unterminated] == [("dkim", "pass")]


@pytest.mark.parametrize(("authenticated", "from_domain", "expected"), [
    ("example.org", "example.org", True), ("example.org", "a.b.example.org", True),
    ("a.example.org", "example.org", False), ("org", "example.org", False), ("", "example.org", False),
    ("xexample.org", "example.org", False),
])
def test_alignment(authenticated: str, from_domain: str, expected: bool) -> None:
    assert aligned(authenticated, from_domain) is expected
