"""Pure domain code: functions of (settings, dictionaries, partition, upstream frames, rng) that
return polars frames. Nothing here imports dagster or touches the disk."""
