"""Audits: totals."""

AUDITS: list = []
