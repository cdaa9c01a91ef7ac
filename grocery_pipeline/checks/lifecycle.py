"""Audits: lifecycle."""

AUDITS: list = []
