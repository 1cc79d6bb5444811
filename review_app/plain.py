"""User text (names, comments, notes, paths, error messages) shown by Streamlit as plain text."""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all
# leaves nothing for Markdown (links, emphasis, directives, math, HTML) to act on.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def plain(text: object) -> str:
    """`text` escaped for st.markdown / st.error & co: shown exactly as written."""
    return _PUNCTUATION.sub(r"\\\1", str(text))
