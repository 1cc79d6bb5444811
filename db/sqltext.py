"""Quoting text into SQL that cannot take parameters (names, COPY targets, built pivots)."""

from __future__ import annotations


def sql_literal(text: str) -> str:
    """A string constant (it's -> 'it''s')."""
    return "'" + text.replace("'", "''") + "'"


def sql_name(text: str) -> str:
    '''A quoted identifier (a "b" -> "a ""b"""), so any text is a safe column name.'''
    return '"' + text.replace('"', '""') + '"'
