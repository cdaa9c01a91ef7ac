"""Audits: volume."""

AUDITS: list = []
