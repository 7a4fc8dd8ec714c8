"""Placeholders: values the same for everyone can be filled once, the rest per recipient."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.placeholders import FIELDS, Template, fill, token

_pieces = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.builds(token, st.sampled_from(FIELDS), html_part=st.booleans()),
        st.just("%%unknown%%"),
    ),
    max_size=12,
)
# Values never hold a token themselves (a filled value becomes part of the text).
_values = st.dictionaries(
    st.sampled_from(FIELDS), st.text(st.characters(blacklist_characters="%"), max_size=12)
)


@settings(max_examples=200, deadline=None)
@given(pieces=_pieces, first=_values, rest=_values)
def test_property_filling_some_fields_first_changes_nothing_in_the_end(
    pieces: list[str], first: dict[str, str], rest: dict[str, str]
) -> None:
    text = "".join(pieces)
    everything = {**rest, **first}
    assert Template.parse(fill(text, first)).substitute(rest) == Template.parse(text).substitute(
        everything
    )


def test_fill_leaves_other_tokens_and_escapes_in_the_html_part() -> None:
    text = "%%webview_url%% %%webview_url:html%% %%name%% %%unknown%%"
    assert fill(text, {"webview_url": "https://x.test/?a=1&b=2"}) == (
        "https://x.test/?a=1&b=2 https://x.test/?a=1&amp;b=2 %%name%% %%unknown%%"
    )
