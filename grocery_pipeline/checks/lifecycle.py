"""Audits: lifecycles. Status histories follow their allowed paths with timestamps that never go
backwards, every delivered order is exactly one stop of one delivery run, and no driver or truck
is in two places at once (today's runs are also checked against yesterday's last ones)."""

from __future__ import annotations

import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from

ORDER_PATH = ("PENDING", "CONFIRMED", "PICKING", "OUT_FOR_DELIVERY", "DELIVERED")
# an order may be cancelled at any step before it is delivered
ORDER_STEPS = {(a, b) for a, b in zip(ORDER_PATH, ORDER_PATH[1:])} | {(s, "CANCELLED") for s in ORDER_PATH[:-1]}
ORDER_FINAL = ("DELIVERED", "CANCELLED")
SHIPMENT_PATH = ("SCHEDULED", "LOADING", "IN_TRANSIT", "ARRIVED", "UNLOADING", "COMPLETED")
SHIPMENT_STEPS = {(a, b) for a, b in zip(SHIPMENT_PATH, SHIPMENT_PATH[1:])}
SHIPMENT_TIMES = ("scheduled_at", "loading_at", "departed_at", "arrived_at", "unloading_at", "completed_at",
                  "truck_back_at")


def _histories_in_order(events: pl.DataFrame, entity: str, seq: str, ts: str, steps: set[tuple[str, str]],
                        first: str, finals: tuple[str, ...]) -> bool:
    """Whether `broken_histories` would find nothing, decided in one pass without sorting or
    windows when the events already stand in (entity, seq) order, as they are written, with no key
    or status missing: each row then only needs the row before it. False when unsure."""
    if events.is_empty() or any(events[c].null_count() for c in (entity, seq, "status")):
        return events.is_empty()
    codes = {s: i for i, s in enumerate(sorted({s for step in steps for s in step} | {first, *finals}))}
    allowed = [codes[a] * len(codes) + codes[b] for a, b in steps]
    code = pl.col("status").replace_strict(codes, default=None, return_dtype=pl.Int64)
    new = (pl.col(entity) != pl.col(entity).shift(1)).fill_null(True)
    last = (pl.col(entity) != pl.col(entity).shift(-1)).fill_null(True)
    in_order = ((pl.col(entity) > pl.col(entity).shift(1))
                | ((pl.col(entity) == pl.col(entity).shift(1)) & (pl.col(seq) > pl.col(seq).shift(1)))).fill_null(True)
    numbered = pl.when(new).then(pl.col(seq) == 1).otherwise(pl.col(seq) == pl.col(seq).shift(1) + 1)
    stepped = pl.when(new).then(pl.col("status") == first).otherwise(
        (code.shift(1) * len(codes) + code).is_in(allowed))
    forward = new | ~(pl.col(ts) < pl.col(ts).shift(1)).fill_null(False)
    finished = ~last | pl.col("status").is_in(list(finals))
    return events.select(pl.all_horizontal(code.is_not_null(), in_order, numbered, stepped, forward, finished)
                         .fill_null(False).all()).item()


def broken_histories(events: pl.DataFrame, entity: str, seq: str, ts: str, steps: set[tuple[str, str]],
                     first: str, finals: tuple[str, ...]) -> pl.DataFrame:
    """Entities (one row each, with the reason) whose status history is not numbered 1..n, does not
    start at `first`, takes a step not in `steps`, goes back in time, or does not end in a final status."""
    if _histories_in_order(events, entity, seq, ts, steps, first, finals):
        return pl.DataFrame(schema={entity: events.schema[entity], "reason": pl.String})
    allowed = pl.DataFrame({"_from": [a for a, _ in steps], "status": [b for _, b in steps], "_allowed": True},
                           schema={"_from": pl.String, "status": pl.String, "_allowed": pl.Boolean})
    ordered = events.sort(entity, seq).with_columns(
        _position=pl.int_range(1, pl.len() + 1).over(entity),
        _from=pl.col("status").shift(1).over(entity),
        _previous_ts=pl.col(ts).shift(1).over(entity),
        _last=pl.int_range(pl.len()).over(entity) == pl.len().over(entity) - 1,
    ).join(allowed, on=["_from", "status"], how="left")
    reasons = pl.concat_str([
        pl.when(pl.col(seq) != pl.col("_position")).then(pl.lit("numbering;")),
        pl.when(pl.col("_from").is_null() & (pl.col("status") != first)).then(pl.lit(f"not starting at {first};")),
        pl.when(pl.col("_from").is_not_null() & pl.col("_allowed").is_null()).then(
            pl.concat_str(pl.col("_from"), pl.lit("->"), pl.col("status"), pl.lit(";"))),
        pl.when(pl.col(ts) < pl.col("_previous_ts")).then(pl.lit("time goes backwards;")),
        pl.when(pl.col("_last") & ~pl.col("status").is_in(list(finals))).then(pl.lit("unfinished;")),
    ], ignore_nulls=True)
    bad = ordered.with_columns(reason=reasons).filter(pl.col("reason") != "")
    return bad.group_by(entity, maintain_order=True).agg(pl.col("reason").first())


def double_booked(runs: pl.DataFrame, who: str, start: str, end: str, run_id: str,
                  earlier: pl.DataFrame | None = None) -> pl.DataFrame:
    """Runs that start before the same driver's (or truck's) previous run has ended, or end before
    they start. `earlier` (yesterday's runs) only serves as the previous run of today's first."""
    columns = [run_id, who, start, end]
    today = runs.select(columns).with_columns(_today=pl.lit(True))
    before = (earlier.select(columns).with_columns(_today=pl.lit(False)) if earlier is not None
              else today.head(0))
    timeline = pl.concat([before, today]).sort(who, start, end).with_columns(
        _previous_end=pl.col(end).shift(1).cum_max().over(who))
    return timeline.filter(pl.col("_today") & ((pl.col(start) < pl.col("_previous_end"))
                                               | (pl.col(end) < pl.col(start))))


def _order_events(ctx: AuditContext) -> Finding:
    events = ctx.frame("order_events")
    broken = broken_histories(events, "order_id", "event_seq", "event_ts", ORDER_STEPS, "PENDING", ORDER_FINAL)
    orders = ctx.same_day("orders")
    if orders is not None:
        last = (events.select("order_id", "event_seq", "status").sort("order_id", "event_seq")  # not every column
                .group_by("order_id").agg(pl.col("status").last().alias("_last")))
        disagree = (orders.select("order_id", "status").join(last, on="order_id", how="left")
                    .filter(pl.col("_last").is_null() | (pl.col("_last") != pl.col("status")))
                    .select("order_id", reason=pl.lit("final status differs from orders.status")))
        broken = pl.concat([broken, disagree]).unique("order_id", keep="first", maintain_order=True)
    return finding_from(broken, "order_id", reasons=dict(broken.group_by("reason").len().head(10).rows()))


def _orders_timestamps(ctx: AuditContext) -> Finding:
    orders = ctx.frame("orders")
    delivered = pl.col("status") == "DELIVERED"
    offenders = orders.filter(
        ~pl.col("status").is_in(list(ORDER_FINAL))
        | (pl.col("window_start") < pl.col("placed_at")) | (pl.col("window_end") <= pl.col("window_start"))
        | (delivered & (pl.col("delivered_at").is_null() | (pl.col("delivered_at") < pl.col("placed_at"))))
        | (~delivered & pl.col("delivered_at").is_not_null())
        | (delivered == pl.col("cancel_reason").is_not_null())
    )
    return finding_from(offenders, "order_id")


def _one_stop_per_delivered_order(ctx: AuditContext) -> Finding:
    stops = ctx.frame("bundle_stops")
    orders = ctx.same_day("orders")
    if orders is None:
        return finding_from(stops, "order_id", reason="the day's orders are not available")
    per_order = stops.group_by("order_id").agg(pl.len().alias("stops"))
    status = orders.select("order_id", "status")
    delivered = (status.filter(pl.col("status") == "DELIVERED").join(per_order, on="order_id", how="left")
                 .filter(pl.col("stops").fill_null(0) != 1))
    stray = per_order.join(status, on="order_id", how="left").filter(
        pl.col("status").is_null() | (pl.col("status") != "DELIVERED"))
    offenders = pl.concat([delivered.select("order_id"), stray.select("order_id")])
    return finding_from(offenders, "order_id", delivered_without_exactly_one_stop=delivered.height,
                        stops_for_undelivered_orders=stray.height)


def _stops_follow_the_route(ctx: AuditContext) -> Finding:
    stops = ctx.frame("bundle_stops")
    bundles = ctx.same_day("bundles")
    if bundles is None:
        return finding_from(stops, ["bundle_id", "stop_seq"], reason="the day's bundles are not available")
    ordered = stops.sort("bundle_id", "stop_seq").with_columns(
        _position=pl.int_range(1, pl.len() + 1).over("bundle_id"),
        _previous=pl.col("arrival_ts").shift(1).over("bundle_id"),
    ).join(bundles.select("bundle_id", "dispatched_at", "returned_at"), on="bundle_id", how="left")
    bad_stops = ordered.filter(
        (pl.col("stop_seq") != pl.col("_position")) | (pl.col("arrival_ts") < pl.col("_previous"))
        | pl.col("dispatched_at").is_null() | (pl.col("arrival_ts") < pl.col("dispatched_at"))
        | (pl.col("arrival_ts") > pl.col("returned_at")) | (pl.col("miles_from_previous") < 0))
    counts = stops.group_by("bundle_id").agg(pl.len().alias("_stops"))
    bad_bundles = bundles.join(counts, on="bundle_id", how="left").filter(
        (pl.col("order_count") != pl.col("_stops").fill_null(0)) | ~pl.col("order_count").is_between(1, 5))
    offenders = pl.concat([bad_stops.select("bundle_id", "stop_seq"),
                           bad_bundles.select("bundle_id", pl.lit(None, pl.Int64).alias("stop_seq"))])
    return finding_from(offenders, ["bundle_id", "stop_seq"], bundles_with_wrong_order_count=bad_bundles.height)


def _never_double_booked(table: str, who: str, start: str, end: str, run_id: str):
    def run(ctx: AuditContext) -> Finding:
        offenders = double_booked(ctx.frame(table), who, start, end, run_id, ctx.previous_day(table))
        return finding_from(offenders, run_id, **{f"{who}s_double_booked": offenders[who].n_unique()})
    return run


def _shipments_timestamps(ctx: AuditContext) -> Finding:
    shipments = ctx.frame("shipments")
    backwards = pl.any_horizontal(pl.col(b) < pl.col(a) for a, b in zip(SHIPMENT_TIMES, SHIPMENT_TIMES[1:]))
    offenders = shipments.filter(backwards)
    return finding_from(offenders, "shipment_id")


def _truck_moves(ctx: AuditContext) -> Finding:
    moves = ctx.frame("truck_moves")
    broken = broken_histories(moves, "shipment_id", "event_seq", "status_ts", SHIPMENT_STEPS, "SCHEDULED",
                              ("COMPLETED",))
    return finding_from(broken, "shipment_id", reasons=dict(broken.group_by("reason").len().head(10).rows()))


AUDITS: list[Audit] = [
    Audit("order_events_in_order", "order_events",
          "Each order's history is numbered from 1, starts PENDING, moves PENDING -> CONFIRMED -> PICKING -> "
          "OUT_FOR_DELIVERY -> DELIVERED (or to CANCELLED before delivery), never goes back in time, and ends "
          "in the order's final status.", _order_events),
    Audit("orders_timestamps_in_order", "orders",
          "placed_at <= window_start < window_end; a delivered order has delivered_at >= placed_at and no "
          "cancel reason; a cancelled order has a cancel reason and no delivered_at.", _orders_timestamps),
    Audit("bundle_stops_one_per_delivered_order", "bundle_stops",
          "Every delivered order of the day is exactly one bundle stop, and every stop is a delivered order.",
          _one_stop_per_delivered_order),
    Audit("bundle_stops_follow_the_route", "bundle_stops",
          "Stops are numbered from 1 in arrival order, between the run's dispatch and return; each run "
          "carries 1-5 orders and order_count equals its stops.", _stops_follow_the_route),
    Audit("bundles_driver_never_double_booked", "bundles",
          "No driver starts a run before their previous run (that day or the day before) has returned.",
          _never_double_booked("bundles", "driver_id", "dispatched_at", "returned_at", "bundle_id"),
          day_reads={"bundles": ("bundle_id", "driver_id", "dispatched_at", "returned_at")}),
    Audit("shipments_timestamps_in_order", "shipments",
          "scheduled <= loading <= departed <= arrived <= unloading <= completed <= truck back, for every "
          "shipment.", _shipments_timestamps),
    Audit("shipments_truck_never_double_booked", "shipments",
          "No truck starts loading before it is back from its previous trip (that day or the day before).",
          _never_double_booked("shipments", "truck_id", "loading_at", "truck_back_at", "shipment_id"),
          day_reads={"shipments": ("shipment_id", "truck_id", "loading_at", "truck_back_at")}),
    Audit("truck_moves_in_order", "truck_moves",
          "Each shipment's truck moves are numbered from 1 and go SCHEDULED -> LOADING -> IN_TRANSIT -> "
          "ARRIVED -> UNLOADING -> COMPLETED without going back in time.", _truck_moves),
]
