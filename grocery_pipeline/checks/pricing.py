"""Audits: pricing."""

AUDITS: list = []
