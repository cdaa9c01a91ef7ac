"""Audits: inventory."""

AUDITS: list = []
