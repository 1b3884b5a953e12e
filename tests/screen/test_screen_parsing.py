"""What the page and the browser send is outside input: the Cookie header, the posted forms and
the link secrets are parsed strictly (property tests); sign-in links and sessions end on the
daemon's clock."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir import clock
from comptoir.screen import cookies, forms
from comptoir.screen.catalogue import CATALOGUE
from comptoir.screen.sessions import Sessions, SignInLinks, is_secret

PRESCRIBER = "10099000027"  # 11 digits, Luhn key right (generated, not a real RPPS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_cookie_header_parses_to_names_and_values(header: str) -> None:
    out = cookies.parse(header)
    for name, value in out.items():
        assert name and "=" not in name and ";" not in name and ";" not in value
    sid = cookies.session_id(header)
    assert sid is None or isinstance(sid, str)


COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\=')


@given(st.text(alphabet=COOKIE_OCTETS, min_size=1, max_size=40))
def test_our_cookie_is_found_among_others_and_ambiguity_is_refused(value: str) -> None:
    header = f"a=1; {cookies.COOKIE}={value}; b=2"
    assert cookies.session_id(header) == value
    assert cookies.session_id(header + f"; {cookies.COOKIE}={value}x") is None
    assert cookies.session_id("x" * 5000 + f"; {cookies.COOKIE}={value}") is None


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_posted_body_is_a_form_error_or_a_checked_dispensation(body: Any) -> None:
    for parse in (forms.person, forms.dispensation):
        try:
            parse(body)
        except forms.FormError as e:
            assert isinstance(e.field, str) and str(e)


@given(st.integers(0, 99),
       st.lists(st.tuples(st.sampled_from(CATALOGUE), st.integers(1, 99)), min_size=1,
                max_size=10), st.booleans(), st.booleans())
def test_a_good_dispensation_is_priced_from_the_catalogue(person: int, lines: list[Any],
                                                          amo: bool, amc: bool) -> None:
    body = {"person": person, "prescriber_rpps": PRESCRIBER,
            "tiers_payant": {"amo": amo, "amc": amc},
            "lines": [{"cip13": p.cip13, "quantity": q} for p, q in lines]}
    d = forms.dispensation(body)
    import datetime as dt
    req = forms.request(d, finess="990000127", pharmacist_rpps=PRESCRIBER,
                        today=dt.date(2026, 9, 21))
    assert req.person == person and req.tiers_payant.amo is amo and req.tiers_payant.amc is amc
    for (p, q), ln in zip(lines, req.lines, strict=True):
        assert (ln.code, ln.quantity, ln.unit_price, ln.base, ln.rate) == (
            p.cip13, q, p.unit_price, p.base, p.rate)
        assert ln.amo is None and ln.amc is None and ln.patient is None  # billing computes


@given(st.sampled_from(["person", "lines", "prescriber_rpps", "tiers_payant"]), json_values)
def test_a_wrong_field_is_named(field: str, value: Any) -> None:
    body: dict[str, Any] = {"person": 0, "prescriber_rpps": PRESCRIBER,
                            "lines": [{"cip13": CATALOGUE[0].cip13, "quantity": 1}]}
    body[field] = value
    try:
        forms.dispensation(body)
    except forms.FormError as e:
        assert e.field.startswith(field)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_no_text_signs_in_but_an_issued_link(tmp_path_factory: Any, text: str) -> None:
    links = SignInLinks(tmp_path_factory.mktemp("links"), ttl=300)
    issued = links.issue()
    assert not links.redeem(text) or text == issued


@given(st.text(max_size=60))
def test_secrets_have_one_shape(text: str) -> None:
    assert is_secret(text) == (len(text) == 43 and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in text))


def test_links_once_and_sessions_expire(tmp_path) -> None:
    with clock.use(clock.ManualClock(time.time())) as c:
        links = SignInLinks(tmp_path / "links", ttl=300)
        a, b = links.issue(), links.issue()
        assert (tmp_path / "links").stat().st_mode & 0o777 == 0o700
        assert links.redeem(a) and not links.redeem(a)
        assert not links.redeem("A" * 43) and not links.redeem(None)
        c.advance(301)
        assert not links.redeem(b)
        sessions = Sessions(ttl=100, max_sessions=2)
        s1 = sessions.open()
        assert sessions.get(s1.sid) == s1 and Sessions.csrf_ok(s1, s1.csrf)
        assert not Sessions.csrf_ok(s1, s1.sid) and not Sessions.csrf_ok(s1, None)
        c.advance(100)
        assert sessions.get(s1.sid) is None
        s2, s3, s4 = sessions.open(), sessions.open(), sessions.open()
        assert sessions.get(s2.sid) is None and sessions.get(s4.sid) == s4  # oldest goes
        sessions.close(s4.sid)
        assert sessions.get(s4.sid) is None and sessions.get(s3.sid) == s3
