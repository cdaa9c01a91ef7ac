"""Audits: realism."""

AUDITS: list = []
