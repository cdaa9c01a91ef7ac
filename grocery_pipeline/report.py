"""The realism report: every realism target of the product beside the value measured in the
warehouse, by SQL on `warehouse.duckdb` opened read-only (a run may be writing meanwhile).

    grocery-pipeline report [--data-dir D]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from grocery_pipeline.storage.catalog import connect_with_retry


@dataclass(frozen=True)
class Measure:
    target: str
    anchor: str
    measured: str
    ok: bool | None   # None when the window holds no data for the target


Check = Callable[[duckdb.DuckDBPyConnection], Measure]

# Sales lines of both channels that moved goods, with the day and the store.
SOLD_LINES = """
    SELECT l.product_id, l.quantity, l.line_total, l.promotion_id, r.store_id, r.business_date
    FROM grocery.receipt_lines l JOIN grocery.receipts r USING (receipt_id)
    UNION ALL
    SELECT i.product_id, i.quantity, i.line_total, i.promotion_id, o.store_id, o.business_date
    FROM grocery.order_items i JOIN grocery.orders o USING (order_id) WHERE i.quantity > 0
"""
# Every visit of a loyalty customer: in-store receipts and delivery orders.
VISITS = """
    SELECT customer_id, store_id FROM grocery.receipts WHERE customer_id IS NOT NULL
    UNION ALL SELECT customer_id, store_id FROM grocery.orders
"""
MILES = """
    2 * 3958.8 * asin(sqrt(pow(sin(radians({lat2} - {lat1}) / 2), 2)
        + cos(radians({lat1})) * cos(radians({lat2})) * pow(sin(radians({lon2} - {lon1}) / 2), 2)))
"""


def _one(conn, sql: str):
    return conn.execute(sql).fetchone()


def _between(value, low, high) -> bool:
    return value is not None and low <= value <= high


def items_per_basket(conn) -> Measure:
    instore, online = _one(conn, """
        SELECT (SELECT avg(line_count) FROM grocery.receipts),
               (SELECT avg(line_count) FROM grocery.orders)""")
    return Measure("items per basket ~10", "Instacart: 10.1 products per order",
                   f"in-store {instore:.1f}, delivery {online:.1f} products per basket",
                   _between(instore, 8, 12) and _between(online, 8, 13))


def basket_value(conn) -> Measure:
    (value,) = _one(conn, "SELECT avg(total) FROM grocery.receipts")
    return Measure("in-store basket value ~$42", "FMI: $42.07 average transaction", f"${value:.2f}",
                   _between(value, 36, 48))


def reorder_share(conn) -> Measure:
    whole, settled = _one(conn, """
        SELECT avg(i.reordered::INT),
               avg(i.reordered::INT) FILTER (WHERE o.business_date >= (SELECT min(business_date) + 28 FROM grocery.orders))
        FROM grocery.order_items i JOIN grocery.orders o USING (order_id)""")
    shown = f"{whole:.1%} of delivery lines" + (f" ({settled:.1%} after the first 4 weeks)" if settled else "")
    return Measure("reorder share of delivery lines 55-62%", "Instacart: ~59% of lines are reorders", shown,
                   _between(settled if settled is not None else whole, 0.55, 0.62))


def reorder_flag_is_true(conn) -> Measure:
    (false_claims,) = _one(conn, """
        WITH lines AS (
            SELECT o.customer_id, i.product_id, i.reordered, i.quantity, o.business_date
            FROM grocery.order_items i JOIN grocery.orders o USING (order_id))
        SELECT count(*) FROM lines l WHERE l.reordered AND NOT EXISTS (
            SELECT 1 FROM lines e WHERE e.customer_id = l.customer_id AND e.product_id = l.product_id
              AND e.quantity > 0 AND e.business_date < l.business_date)""")
    return Measure("reordered only if bought before", "Instacart `reordered` semantics",
                   f"{false_claims} reordered lines without an earlier purchase", false_claims == 0)


def days_between_orders(conn) -> Measure:
    recorded, real_mean, real_max, over_30 = _one(conn, """
        WITH gaps AS (
            SELECT business_date - lag(business_date) OVER (PARTITION BY customer_id ORDER BY placed_at) AS gap
            FROM grocery.orders)
        SELECT (SELECT avg(days_since_prior_order) FROM grocery.orders),
               avg(gap), max(gap), avg((gap > 30)::INT) FROM gaps WHERE gap IS NOT NULL""")
    return Measure("days between a customer's orders <= 30, mean ~17", "Instacart: days_since_prior_order capped at 30",
                   f"mean {recorded:.1f} recorded (capped), {real_mean:.1f} in the window, "
                   f"max {real_max}, {over_30:.1%} over 30", _between(recorded, 12, 22))


def hour_of_day(conn) -> Measure:
    rows = dict(conn.execute("""
        SELECT hour(receipt_ts) h, count(*) * 1.0 / sum(count(*)) OVER () FROM grocery.receipts GROUP BY h""").fetchall())
    early = (rows.get(7, 0) + rows.get(8, 0)) / 2
    plateau = sum(rows.get(h, 0) for h in range(10, 15)) / 5
    bump = (rows.get(17, 0) + rows.get(18, 0)) / 2
    tail = (rows.get(21, 0) + rows.get(22, 0)) / 2
    (online_hour, store_hour) = _one(conn, """
        SELECT (SELECT avg(hour(placed_at) + minute(placed_at) / 60) FROM grocery.orders),
               (SELECT avg(hour(receipt_ts) + minute(receipt_ts) / 60) FROM grocery.receipts)""")
    return Measure("hour of day: build from 7:00 to a 10-15h plateau, after-work bump, evening tail; delivery later",
                   "grocery traffic curves",
                   f"share per hour 7-8h {early:.1%}, 10-15h {plateau:.1%}, 17-18h {bump:.1%}, 21-22h {tail:.1%}; "
                   f"mean hour in-store {store_hour:.1f}, delivery orders {online_hour:.1f}",
                   early < plateau and tail < plateau and bump >= plateau * 0.95 and online_hour > store_hour)


def weekday_factors(conn) -> Measure:
    rows = dict(conn.execute("""
        WITH days AS (SELECT business_date, count(*) n FROM grocery.receipts GROUP BY business_date)
        SELECT isodow(business_date), avg(n) / (SELECT avg(n) FROM days) FROM days GROUP BY 1""").fetchall())
    if len(rows) < 7:
        return Measure("weekday factors (Mon low, Sat high), weekend busiest", "retail weekly rhythm",
                       "fewer than 7 weekdays in the window", None)
    names = "Mon Tue Wed Thu Fri Sat Sun".split()
    shown = ", ".join(f"{names[d - 1]} {rows[d]:.2f}" for d in range(1, 8))
    return Measure("weekday factors (Mon low, Sat high), weekend busiest", "retail weekly rhythm", shown,
                   rows[6] == max(rows.values()) and rows[1] < 1 and (rows[6] + rows[7]) / 2 > 1)


def _event_lift(conn, holiday: str) -> float | None:
    (lift,) = _one(conn, f"""
        WITH days AS (SELECT business_date d, count(*) n FROM grocery.receipts GROUP BY d),
             event AS (SELECT date FROM grocery.calendar WHERE holiday_name = '{holiday}')
        SELECT avg(e.n / base.n) - 1 FROM event JOIN days e ON e.d = event.date
        JOIN LATERAL (SELECT avg(n) n FROM days WHERE d IN (event.date - 7, event.date - 14, event.date - 21)) base ON true""")
    return lift


def holiday_peaks(conn) -> Measure:
    thanksgiving = _event_lift(conn, "Day Before Thanksgiving")
    christmas = [v for v in (_event_lift(conn, "Christmas Rush"), _event_lift(conn, "Christmas Eve")) if v is not None]
    if thanksgiving is None and not christmas:
        return Measure("day before Thanksgiving +80-95%; Dec 23-24 about +60%", "NGA / FMI holiday traffic",
                       "not in the window (the calendar models x1.88 and x1.55-1.60 on those days)", None)
    parts, ok = [], True
    if thanksgiving is not None:
        parts.append(f"day before Thanksgiving {thanksgiving:+.0%}")
        ok &= _between(thanksgiving, 0.75, 1.0)
    if christmas:
        mean = sum(christmas) / len(christmas)
        parts.append(f"Dec 23-24 {mean:+.0%}")
        ok &= _between(mean, 0.45, 0.75)
    return Measure("day before Thanksgiving +80-95%; Dec 23-24 about +60%",
                   "NGA / FMI holiday traffic (vs the same weekday of the 3 weeks before)", ", ".join(parts), ok)


def promotion_share(conn) -> Measure:
    (share,) = _one(conn, f"SELECT avg((promotion_id IS NOT NULL)::INT) FROM ({SOLD_LINES})")
    return Measure("34-43% of lines on promotion", "retail promotion share of units", f"{share:.1%}",
                   _between(share, 0.34, 0.43))


def produce_share(conn) -> Measure:
    (share,) = _one(conn, f"""
        SELECT sum(line_total) FILTER (WHERE p.department = 'Produce') / sum(line_total)
        FROM ({SOLD_LINES}) s JOIN (SELECT DISTINCT product_id, department FROM grocery.products) p USING (product_id)""")
    return Measure("produce ~10% of sales", "FMI: produce ~10% of grocery sales", f"{share:.1%}", _between(share, 0.07, 0.13))


def popularity_skew(conn) -> Measure:
    share, skus = _one(conn, f"""
        WITH per AS (SELECT product_id, count(*) n FROM ({SOLD_LINES}) GROUP BY product_id),
             ranked AS (SELECT n, row_number() OVER (ORDER BY n DESC) r, count(*) OVER () total FROM per)
        SELECT sum(n) FILTER (WHERE r <= greatest(1, total // 100)) / sum(n), max(total) FROM ranked""")
    return Measure("top 1% of SKUs carry far more than 2% of lines", "long-tail retail demand",
                   f"top 1% of {skus} SKUs: {share:.1%} of lines", share is not None and share > 0.04)


def store_volume_spread(conn) -> Measure:
    (cv,) = _one(conn, """
        WITH per AS (SELECT store_id, count(*) n FROM grocery.receipts GROUP BY store_id)
        SELECT stddev_pop(n) / avg(n) FROM per""")
    return Measure("store volumes vary (coefficient of variation > 0.6)", "chain store sales dispersion",
                   f"CV of receipts per store {cv:.2f}", cv is not None and cv > 0.6)


def nearest_store_visits(conn) -> Measure:
    share, under_10 = _one(conn, f"""
        WITH stores AS (SELECT DISTINCT store_id, lat, lon FROM grocery.stores),
             people AS (SELECT DISTINCT customer_id, lat, lon FROM grocery.customers),
             dist AS (SELECT c.customer_id, s.store_id,
                             {MILES.format(lat1='c.lat', lon1='c.lon', lat2='s.lat', lon2='s.lon')} AS miles
                      FROM people c CROSS JOIN stores s),
             ranked AS (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY miles, store_id) r FROM dist)
        SELECT avg((r.r <= 2)::INT), avg((r.miles < 10)::INT)
        FROM ({VISITS}) v JOIN ranked r USING (customer_id, store_id)""")
    return Measure("70% of a customer's visits at their two nearest stores; most trips under 10 miles",
                   "shopper travel studies",
                   f"{share:.1%} at the two nearest stores, {under_10:.1%} under 10 miles",
                   _between(share, 0.62, 0.80) and under_10 > 0.5)


def shrink_share(conn) -> Measure:
    (share,) = _one(conn, f"""
        WITH prices AS (SELECT store_product_id, list_price FROM grocery.store_products),
             lost AS (SELECT sum(-t.quantity * p.list_price) v FROM grocery.store_inventory_txn t
                      JOIN prices p USING (store_product_id) WHERE t.txn_type = 'SHRINK')
        SELECT (SELECT v FROM lost) / (SELECT sum(line_total) FROM ({SOLD_LINES}))""")
    return Measure("shrink ~2-3% of sales", "NGA / FMI shrink surveys", f"{share:.2%} of sales value",
                   _between(share, 0.02, 0.03))


CHECKS: list[Check] = [items_per_basket, basket_value, reorder_share, reorder_flag_is_true, days_between_orders,
                       hour_of_day, weekday_factors, holiday_peaks, promotion_share, produce_share, popularity_skew,
                       store_volume_spread, nearest_store_visits, shrink_share]


def measure(warehouse: Path) -> list[Measure]:
    """Every realism target with its measured value; the catalog is opened read-only."""
    if not Path(warehouse).is_file():
        raise FileNotFoundError(f"no warehouse at {warehouse}; run `grocery-pipeline generate` first")
    with connect_with_retry(Path(warehouse), read_only=True) as conn:
        return [check(conn) for check in CHECKS]


def render(measures: list[Measure]) -> str:
    width = max(len(m.target) for m in measures)
    lines = [f"{'realism target'.ljust(width)}  status  measured", "-" * (width + 40)]
    for m in measures:
        status = {True: "ok", False: "MISS", None: "n/a"}[m.ok]
        lines.append(f"{m.target.ljust(width)}  {status.ljust(6)}  {m.measured}")
    missed = sum(m.ok is False for m in measures)
    lines.append(f"{len(measures) - missed} of {len(measures)} targets met or not applicable, {missed} missed")
    return "\n".join(lines)
