"""Pricing assets: price ticks (finer partitions)."""

PRICING_ASSETS: list = []
