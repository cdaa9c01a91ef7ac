"""Distances and placement on the map (vectorized, miles)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_MILES = 3958.8
MILES_PER_DEGREE_LAT = 69.0


def haversine_miles(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in miles; arguments broadcast like numpy arrays."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def offset(lat, lon, miles, bearing_radians):
    """Points `miles` away from (lat, lon) in the given directions (flat-earth, fine under 50 mi)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    dlat = miles * np.cos(bearing_radians) / MILES_PER_DEGREE_LAT
    dlon = miles * np.sin(bearing_radians) / (MILES_PER_DEGREE_LAT * np.cos(np.radians(lat)))
    return np.round(lat + dlat, 6), np.round(lon + dlon, 6)


def scatter_around(lat, lon, rng: np.random.Generator, mean_miles: float):
    """Random points around anchors, distance gamma-distributed with the given mean."""
    n = np.asarray(lat).shape[0]
    miles = rng.gamma(2.0, mean_miles / 2.0, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    return offset(lat, lon, miles, bearing)


def nearest(lat, lon, target_lat, target_lon, chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and distance to, the nearest target for each point (chunked to bound memory)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    idx = np.empty(lat.shape[0], dtype=np.int64)
    dist = np.empty(lat.shape[0], dtype=np.float64)
    for start in range(0, lat.shape[0], chunk):
        stop = start + chunk
        d = haversine_miles(lat[start:stop, None], lon[start:stop, None], target_lat[None, :], target_lon[None, :])
        idx[start:stop] = d.argmin(axis=1)
        dist[start:stop] = d[np.arange(d.shape[0]), idx[start:stop]]
    return idx, dist
