"""The visits-at-two-nearest measure, which looks at a band of latitude around each visitor, against
the plain definition: the visited store is among the two nearest by `nearest_stores`."""

import numpy as np
import pytest

from grocery_pipeline.checks.realism import NEAREST_BAND_MILES, _at_two_nearest
from grocery_pipeline.simulation.shopping import nearest_stores


def _plain(lat, lon, store_lat, store_lon, store_ids, visited):
    near, _ = nearest_stores(lat, lon, store_lat, store_lon, k=2)
    return (store_ids[near] == visited[:, None]).any(axis=1)


@pytest.mark.parametrize("seed", range(6))
def test_at_two_nearest_matches_nearest_stores(seed):
    rng = np.random.default_rng(seed)
    n_stores, n = 60, 3000
    if seed % 2:  # a coarse grid: many ties for second place
        store_lat = rng.integers(0, 8, n_stores) * 0.05 + 40.0
        store_lon = rng.integers(0, 8, n_stores) * 0.05 - 90.0
        lat, lon = rng.integers(0, 8, n) * 0.05 + 40.0, rng.integers(0, 8, n) * 0.05 - 90.0
    else:  # spread far and wide: many visitors beyond the band
        store_lat, store_lon = rng.uniform(30, 45, n_stores), rng.uniform(-110, -75, n_stores)
        lat, lon = rng.uniform(30, 45, n), rng.uniform(-110, -75, n)
    store_ids = np.sort(rng.choice(10_000, n_stores, replace=False))
    visited = store_ids[rng.integers(0, n_stores, n)]
    visited[::5] = store_ids[nearest_stores(lat[::5], lon[::5], store_lat, store_lon, k=2)[0][:, seed % 2]]
    lat[::97] = np.nan
    got = _at_two_nearest(lat, lon, store_lat, store_lon, store_ids, visited, chunk=512)
    want = _plain(lat, lon, store_lat, store_lon, store_ids, visited)
    assert got.any() and not got.all()
    np.testing.assert_array_equal(got, want)


def test_band_reaches_far_visitors():
    # a visitor far beyond the band whose visited store is still its nearest
    store_lat, store_lon = np.array([30.0, 40.0, 40.1, 40.2]), np.array([-90.0, -90.0, -90.0, -90.0])
    lat = np.array([30.0 + 2 * NEAREST_BAND_MILES / 69.0, 40.05])
    lon = np.array([-90.0, -90.0])
    ids = np.array([1, 2, 3, 4])
    got = _at_two_nearest(lat, lon, store_lat, store_lon, ids, np.array([1, 4]))
    np.testing.assert_array_equal(got, [True, False])
