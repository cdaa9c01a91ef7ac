"""Prices: how shelf prices move through the day, and what a store product costs at any moment.

The price state of every store product (its shelf price and when it is next reviewed) opens each
business date from the previous day's close and the catalog as published the day before, then
moves at price ticks. A store product is repriced only at its scheduled review, so every change
knows when the next one happens (`valid_to`) the moment it is made. What a review does depends on
the product's volatility class, the hour (rush-hour surcharge, late-night markdown), random flash
discounts and surges, and promotions (the shelf price returns to the list price while a promotion
runs, so the promotion's discount is taken off an honest regular price).

Pure code: no Dagster, no clock; every random draw comes from `rng_for(seed, "price_updates", tick)`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl

from grocery_pipeline.settings import PRICE_CLASSES, Settings, class_figures, fraction_range, hour_set, tick_grid
from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.rng import rng_for

TABLE = "price_updates"
LIST_PRICE = "LIST_PRICE"  # last_reason of a price never changed since listing
MAX_HOLD_HOURS = 24 * 366.0  # a class with no changes is still reviewed once a year

# The state a tick carries to the next: price_snapshots without its partition columns.
STATE_SCHEMA = {
    "store_product_id": pl.Int64, "store_id": pl.Int64, "product_id": pl.Int64, "price": pl.Float64,
    "price_since": pl.Datetime("us"), "last_reason": pl.String, "next_review_at": pl.Datetime("us"),
    "promotion_until": pl.Date, "list_price": pl.Float64, "msrp": pl.Float64, "unit_cost": pl.Float64,
    "volatility_class": pl.String,
}
# The columns of the previous day's close a day's opening carries (the rest it works out again)
CARRIED = ("store_product_id", "price", "price_since", "last_reason", "next_review_at")
CHANGE_SCHEMA = {
    "tick_at": pl.Datetime("us"), "store_product_id": pl.Int64, "old_price": pl.Float64,
    "new_price": pl.Float64, "change_pct": pl.Float64, "reason": pl.String,
    "valid_from": pl.Datetime("us"), "valid_to": pl.Datetime("us"),
}


@dataclass(frozen=True)
class PricingRules:
    """Every pricing figure, resolved from the settings."""

    tick_minutes: int
    change_rate: dict[str, float]     # expected changes per store product per hour, by volatility class
    volatility: dict[str, float]      # relative size of a market move, by volatility class
    volatility_scale: float           # standard deviation of a move at volatility 1.0
    rush_hours: frozenset[int]
    rush_adjustment: float
    late_night_hours: frozenset[int]
    late_night_adjustment: float
    discount_probability: float
    discount_depth: tuple[float, float]
    surge_probability: float
    surge_depth: tuple[float, float]
    event_hours: float                # mean hours a flash discount or surge lasts
    max_change: float                 # bound on |new / old - 1| at one tick
    mean_reversion: float             # share of the gap to the list price closed at a review
    cost_share: tuple[float, float]   # unit cost as a share of the sale price: (lowest, highest)

    @classmethod
    def from_settings(cls, s: Settings) -> "PricingRules":
        return cls(
            tick_minutes=tick_grid(s.price_tick_cron),
            change_rate=class_figures("price_change_rate", s.price_change_rate),
            volatility=class_figures("price_volatility", s.price_volatility),
            volatility_scale=s.price_volatility_scale,
            rush_hours=hour_set("price_rush_hours", s.price_rush_hours),
            rush_adjustment=s.price_rush_adjustment,
            late_night_hours=hour_set("price_late_night_hours", s.price_late_night_hours),
            late_night_adjustment=s.price_late_night_adjustment,
            discount_probability=s.price_discount_probability,
            discount_depth=fraction_range("price_discount_depth", s.price_discount_depth),
            surge_probability=s.price_surge_probability,
            surge_depth=fraction_range("price_surge_depth", s.price_surge_depth),
            event_hours=s.price_event_hours,
            max_change=s.price_max_change,
            mean_reversion=s.price_mean_reversion,
            cost_share=fraction_range("price_cost_share", s.price_cost_share),
        )

    @property
    def ticks_per_day(self) -> int:
        return 24 * 60 // self.tick_minutes

    def ticks_of(self, business_date: date) -> list[datetime]:
        """Start of every price tick of a business date, in order."""
        midnight = datetime.combine(business_date, time())
        return [midnight + timedelta(minutes=self.tick_minutes * i) for i in range(self.ticks_per_day)]

    def is_first_tick(self, tick_at: datetime) -> bool:
        return tick_at.time() == time()


# -- price points -----------------------------------------------------------------------------
def _ladder_step(price: np.ndarray) -> np.ndarray:
    """Distance between neighbouring retail price points: cents under $1, dimes (x.x9) under $10,
    half dollars (.49/.99) above; no step is more than 10% of the price it leaves."""
    return np.where(price < 1.0, 0.01, np.where(price < 10.0, 0.10, 0.50))


def _snap(price: np.ndarray) -> np.ndarray:
    step = _ladder_step(price)
    ending = np.where(price < 1.0, 0.0, step - 0.01)  # .x9 endings for dimes, .49/.99 for half dollars
    return np.round(np.round((price - ending) / step) * step + ending, 2)


def tick_price_point(price) -> np.ndarray:
    """The nearest retail price point (.99/.49 above $10, .x9 under $10, any cent under $1)."""
    return _snap(np.maximum(np.asarray(price, dtype=np.float64), 0.01))


def _neighbour(price: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The next price point above (direction > 0) or below a price."""
    out = _snap(price + direction * _ladder_step(price))
    stuck = direction * (out - price) <= 0
    return np.where(stuck, np.round(price + direction * 0.01, 2), out)


# -- the day's opening ------------------------------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """The dimension rows a day's ticks price, as published by the previous business date."""

    store_products: pl.DataFrame   # store_product_id, store_id, product_id, list_price, listed_on
    products: pl.DataFrame         # product_id, department, category, msrp, unit_cost, launched_on, discontinued_on
    stores: pl.DataFrame           # store_id, opened_on
    promotions: pl.DataFrame       # promotion_id, scope, product_id, department, category, start_date, end_date
    departments: pl.DataFrame      # department, volatility_class


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def empty_changes() -> pl.DataFrame:
    return pl.DataFrame(schema=CHANGE_SCHEMA)


def promotion_until(catalog: Catalog, business_date: date) -> pl.DataFrame:
    """product_id -> last day of the latest-ending promotion covering it on the date."""
    d = business_date
    running = catalog.promotions.filter((pl.col("start_date") <= d) & (pl.col("end_date") >= d))
    products = catalog.products.select("product_id", "department", "category")
    by_product = running.filter(pl.col("scope") == "PRODUCT").select("product_id", "end_date")
    by_category = running.filter(pl.col("scope") == "CATEGORY").select("department", "category", "end_date") \
        .join(products, on=["department", "category"]).select("product_id", "end_date")
    return pl.concat([by_product, by_category]).group_by("product_id").agg(
        pl.col("end_date").max().alias("promotion_until"))


def _micros(moment: datetime) -> np.int64:
    return np.datetime64(moment, "us").astype(np.int64)


def _moments(at) -> np.ndarray:
    """Epoch microseconds of datetimes; a null is before every moment."""
    return pl.Series(at, dtype=pl.Datetime("us")).to_physical().fill_null(np.iinfo(np.int64).min).to_numpy()


def _review_after(rules: PricingRules, start: datetime, hours: np.ndarray) -> np.ndarray:
    """The first tick at least one tick after `start` and at least `hours` later (epoch microseconds)."""
    ticks = np.maximum(1, np.ceil(np.minimum(hours, MAX_HOLD_HOURS) * 60 / rules.tick_minutes)).astype(np.int64)
    return _micros(start) + ticks * (rules.tick_minutes * 60_000_000)


def _class_codes(classes: pl.Series) -> np.ndarray:
    """Each row's volatility class as its position in PRICE_CLASSES; fails naming a class with no figures."""
    try:
        codes = classes.cast(pl.Enum(PRICE_CLASSES))
    except pl.exceptions.InvalidOperationError:
        codes = None
    if codes is None or codes.null_count():
        unknown = classes.filter(~classes.is_in(PRICE_CLASSES).fill_null(False))
        raise ValueError(f"volatility_class {unknown[0]!r} is not one of {', '.join(PRICE_CLASSES)}")
    return codes.to_physical().to_numpy()


def _by_class(figures: dict[str, float], codes: np.ndarray) -> np.ndarray:
    """Each row's figure for its class (`codes` from `_class_codes`)."""
    return np.array([figures[name] for name in PRICE_CLASSES], dtype=np.float64)[codes]


def _hold_hours(rate: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Hours until the next change: exponential with the rate of change of each row's class."""
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, -np.log1p(-u) / np.where(rate > 0, rate, 1.0), MAX_HOLD_HOURS)


class Close:
    """A previous day's closing state as a frame, handed to the next day's opening once
    (`PriceState.close` is the other way): taken by the opening, it is held by nothing else, so
    it goes as soon as the opening has joined it, not when the caller returns."""

    def __init__(self, frame: pl.DataFrame):
        self._frame: pl.DataFrame | None = frame

    def close(self) -> pl.DataFrame:
        frame, self._frame = self._frame, None
        if frame is None:
            raise RuntimeError("this close was handed to an opening already")
        return frame


def open_day(rules: PricingRules, seed: int, business_date: date, previous_close: "pl.DataFrame | PriceState | Close",
             catalog: Catalog | None) -> pl.DataFrame:
    """The price state at 00:00 of a business date.

    Store products live on the date keep yesterday's closing price and review schedule; those
    newly listed start at their list price with a first review drawn from their class's rate; those
    no longer live (discontinued, or no catalog yet on the first business date) leave. A PriceState
    or a Close given as the previous close is spent (see `PriceState.close`, `Close`).
    """
    return _opening(rules, seed, business_date, previous_close, catalog)[0]


def open_state(rules: PricingRules, seed: int, business_date: date, previous_close: "pl.DataFrame | PriceState | Close",
               catalog: Catalog | None) -> "PriceState":
    """`open_day` as the PriceState the day's ticks run on (its `frame()` is `open_day`'s frame),
    given each row's class code as the opening worked it out rather than read again from the
    class names of every row."""
    return PriceState(*_opening(rules, seed, business_date, previous_close, catalog))


def _opening(rules: PricingRules, seed: int, business_date: date, previous_close: "pl.DataFrame | PriceState | Close",
             catalog: Catalog | None) -> tuple[pl.DataFrame, np.ndarray | None]:
    """`open_day`'s frame and each of its rows' class code (None where a class has no figures)."""
    if catalog is None:
        return empty_state(), None
    if isinstance(previous_close, (PriceState, Close)):
        previous_close = previous_close.close()
    carried = previous_close.select(CARRIED)
    del previous_close
    if carried["store_product_id"].is_sorted():  # both sides flagged sorted: a merge, not a hash join
        carried = carried.with_columns(pl.col("store_product_id").set_sorted())
    d = business_date
    products = catalog.products.filter(
        (pl.col("launched_on") <= d) & (pl.col("discontinued_on").is_null() | (pl.col("discontinued_on") > d))
    ).join(catalog.departments.select("department", "volatility_class"), on="department", how="left")
    missing_class = products.filter(pl.col("volatility_class").is_null())
    if missing_class.height:
        raise ValueError(f"products: department {missing_class['department'][0]!r} of product "
                         f"{missing_class['product_id'][0]} has no volatility_class in departments.csv")
    stores = catalog.stores.filter(pl.col("opened_on") <= d).select("store_id")
    # each product's class code rides along with its class, so the rows need no string lookup
    class_code = pl.col("volatility_class").replace_strict(PRICE_CLASSES, range(len(PRICE_CLASSES)), default=None,
                                                           return_dtype=pl.UInt8)
    attributes = products.select("product_id", "msrp", "unit_cost", "volatility_class", _class=class_code,
                                 _live=pl.lit(True)).join(promotion_until(catalog, d), on="product_id", how="left")
    # filtered and sorted first, then joined in that order: the small product table goes to the rows
    live = (catalog.store_products
            .filter((pl.col("listed_on") <= d) & pl.col("store_id").is_in(stores["store_id"].implode()))
            .select("store_product_id", "store_id", "product_id", "list_price", "listed_on"))
    if not live["store_product_id"].is_sorted():
        live = live.sort("store_product_id")
    # a left join keeps the order cheaply; store products of products not live leave after it
    live = live.join(attributes, on="product_id", how="left", maintain_order="left")
    if live["_live"].null_count():
        live = live.filter(pl.col("_live").is_not_null())
    live = live.with_columns(pl.col("store_product_id").set_sorted())
    # one join in id order, no concatenation and re-sort of the whole state
    state = live.join(carried.with_columns(_carried=pl.lit(True)), on="store_product_id", how="left",
                      maintain_order="left")
    del live, carried  # the joined rows are copies: at xl, 8M rows of 5 and 10 columns go here
    # the few store products listed since start at their list price: their rows are overwritten in
    # the carried columns rather than every row chosen between two columns
    at = np.flatnonzero(state["_carried"].is_null().to_numpy())
    codes = state["_class"].gather(at)
    if codes.null_count():
        _class_codes(state["volatility_class"].gather(at))  # fails naming the class
    rng = rng_for(seed, TABLE, d, "listed")
    midnight = datetime.combine(d, time())
    hours = _hold_hours(_by_class(rules.change_rate, codes.to_numpy()), rng.random(len(at)))
    listed = state.select("list_price", "listed_on")[at]
    opening = {
        "price": listed["list_price"],
        "price_since": listed["listed_on"],
        "last_reason": pl.repeat(LIST_PRICE, len(at), eager=True, dtype=pl.String),
        "next_review_at": pl.Series(_review_after(rules, midnight, hours)),
    }
    columns = []
    for name, values in opening.items():
        # taken out of the frame, the column is the only holder of its values and is written in place
        # (scattered while the frame still holds it, it is copied first: 8M rows at xl, per column)
        column = state.drop_in_place(name).cast(STATE_SCHEMA[name])
        if len(at):
            column.scatter(at, values.cast(STATE_SCHEMA[name]))
        columns.append(column)
    state = state.with_columns(columns)
    class_codes = None if state["_class"].null_count() else state["_class"].to_numpy()
    return state.select(STATE_SCHEMA.keys()).cast(STATE_SCHEMA).set_sorted("store_product_id"), class_codes


# -- one tick ---------------------------------------------------------------------------------
# Every reason a review can give, so the state can hold a row's last reason as a small code.
REASONS = ("DISCOUNT", "LATE_NIGHT", "PROMOTION_END", "PROMOTION_START", "RUSH_HOUR", "SURGE", "VOLATILITY")
_REASON_NAMES = pl.Series("reason", REASONS, dtype=pl.String)
DISCOUNT, LATE_NIGHT, PROMOTION_END, PROMOTION_START, RUSH_HOUR, SURGE, VOLATILITY = range(len(REASONS))
_NEVER = np.iinfo(np.int64).max
_DAY_MICROS = 86_400_000_000


class PriceState:
    """The price state through a run of ticks.

    The frame the run opened with stays as it was; the columns a review changes are held as numpy
    arrays updated in place, and the rows due before the end of the current day are kept apart,
    so a tick costs what it reprices, not the size of the state. The columns a review only reads
    are numpy arrays too, and each class figure is looked up once per state, so a tick touches no
    frame until it builds its changes. The whole state is scanned once per day, and the frame is
    rebuilt only when asked for (`frame()`: the day's close).
    """

    def __init__(self, opened: pl.DataFrame, class_codes: np.ndarray | None = None):
        """`class_codes`: each row's volatility class as its position in PRICE_CLASSES, when known
        (otherwise read from the frame at the first review)."""
        if not opened["store_product_id"].is_sorted():
            opened = opened.sort("store_product_id")  # the draws go to store products in id order
            class_codes = None
        self._opened = opened
        self.store_product_id = opened["store_product_id"].to_numpy()
        self.list_price = opened["list_price"].to_numpy()
        self.msrp, self.unit_cost = opened["msrp"].to_numpy(), opened["unit_cost"].to_numpy()
        promotion_until = opened["promotion_until"]
        self.promoted = promotion_until.is_not_null().to_numpy()
        # a promotion pins the price until the first tick after its last day
        self.promotion_end = (promotion_until.to_physical().fill_null(0).to_numpy().astype(np.int64) + 1) * _DAY_MICROS
        self._class_codes = class_codes
        self.price = opened["price"].to_numpy().astype(np.float64, copy=True)
        # a row with no review time is never due
        self.next_review = opened["next_review_at"].dt.epoch("us").fill_null(_NEVER).to_numpy().copy()
        self.locked = (opened["last_reason"] == "PROMOTION_START").fill_null(False).to_numpy().copy()
        self._since = np.zeros(opened.height, dtype=np.int64)
        self._reason = np.full(opened.height, -1, dtype=np.int8)  # -1: not reviewed since opening
        self._day: date | None = None    # the day the queue below covers
        self._queue: list[list[np.ndarray]] = []  # per tick of that day: positions whose review falls due there
        self._frame: pl.DataFrame | None = opened

    @property
    def height(self) -> int:
        return self._opened.height

    def by_class(self, figures: dict[str, float], index: np.ndarray) -> np.ndarray:
        """The figure of each row at `index` for its volatility class (classes are read once per state)."""
        if self._class_codes is None:
            self._class_codes = _class_codes(self._opened["volatility_class"])
        return _by_class(figures, self._class_codes[index])

    def _tick_of(self, moments: np.ndarray) -> np.ndarray:
        """For each review time, the day's first tick (0-based) at or after it; before the day: 0."""
        waited = moments - self._midnight
        np.maximum(waited, 0, out=waited)
        waited += self._step - 1  # rounded up, in place
        waited //= self._step
        return waited

    def _enqueue(self, index: np.ndarray, moments: np.ndarray) -> None:
        """Queue the rows at `index` by the tick of their review times `moments`; reviews after the
        day's last tick wait for their own day's pass."""
        today = moments <= self._last_tick
        index, tick = index[today], self._tick_of(moments[today]).astype(np.int16)
        order = np.argsort(tick, kind="stable")  # radix sort; keeps each tick's positions ascending
        bounds = np.cumsum(np.bincount(tick, minlength=len(self._queue)))[:-1]
        for queued, part in zip(self._queue, np.split(index[order], bounds)):
            if len(part):
                queued.append(part)

    def due(self, tick_at: datetime, tick_minutes: int) -> np.ndarray:
        """Positions (ascending) of the rows whose review falls due at the tick (they leave the queue).

        The state is scanned once per day, to queue the day's reviews by tick; a tick then takes
        only what is queued up to it.
        """
        at = _micros(tick_at)
        if tick_at.date() != self._day:
            self._day, self._step = tick_at.date(), np.int64(tick_minutes) * 60_000_000
            self._midnight = _micros(datetime.combine(self._day, time()))
            self._queue = [[] for _ in range(-(-24 * 60 // tick_minutes))]
            self._last_tick = self._midnight + (len(self._queue) - 1) * self._step
            index = np.flatnonzero(self.next_review <= self._last_tick)
            self._enqueue(index, self.next_review[index])
        last = min(int(self._tick_of(np.array([at]))[0]), len(self._queue) - 1)
        waiting = [part for queued in self._queue[:last + 1] for part in queued]
        for queued in self._queue[:last + 1]:
            queued.clear()
        if not waiting:
            return np.empty(0, dtype=np.int64)
        candidates = np.concatenate(waiting)
        if self._midnight + last * self._step > at:  # a tick off the grid: the rest wait in the next tick's queue
            now = self.next_review[candidates] <= at
            if not now.all():
                self._queue[last].append(np.sort(candidates[~now]))
                candidates = candidates[now]
        # each queued part is ascending: numpy's stable sort merges the few runs (350k positions
        # in 24 runs, an xl tick's size: 7 ms against 22 ms for its default sort)
        candidates.sort(kind="stable")
        return candidates

    def review(self, index: np.ndarray, tick_at: datetime, new_price: np.ndarray, reason: np.ndarray,
               next_review: np.ndarray) -> None:
        """Record the reviews of the rows at `index` (ascending), made at `tick_at`; `reason` as
        positions in REASONS."""
        self.price[index] = new_price
        self._since[index] = _micros(tick_at)
        self._reason[index] = reason
        self.locked[index] = reason == PROMOTION_START
        self.next_review[index] = next_review
        self._enqueue(index, next_review)
        self._frame = None

    def frame(self) -> pl.DataFrame:
        """The state as a frame (STATE_SCHEMA columns, sorted by store_product_id)."""
        if self._frame is None:
            index = np.flatnonzero(self._reason >= 0)
            values = {
                "price": pl.Series(self.price[index], dtype=pl.Float64),
                "price_since": pl.Series(self._since[index]).cast(pl.Datetime("us")),
                "last_reason": _REASON_NAMES.gather(self._reason[index]),
                "next_review_at": pl.Series(self.next_review[index]).cast(pl.Datetime("us")),
            }
            updated = []
            for column, changed in values.items():
                column_values = self._opened[column].clone()
                column_values.scatter(index, changed)
                updated.append(column_values)
            self._frame = self._opened.with_columns(updated)
        return self._frame


    def close(self) -> pl.DataFrame:
        """The state as a frame, after which this state is spent: the next day's opening keeps only
        the columns it carries, so the rest of the day's state can go before the new one is built."""
        frame = self.frame()
        self._opened = self._frame = None
        self.price = self.next_review = self.locked = self._since = self._reason = None
        self.store_product_id = self.list_price = self.msrp = self.unit_cost = None
        self.promoted = self.promotion_end = None
        self._class_codes, self._queue = None, []
        return frame


def price_tick(rules: PricingRules, seed: int, tick_at: datetime,
               state: pl.DataFrame | PriceState) -> tuple[pl.DataFrame, PriceState]:
    """Reprice every store product whose review falls due at this tick.

    Returns the tick's changes (the price_updates rows without partition columns) and the state
    after them. A PriceState is updated in place and returned (a frame is left as it was). Cost is
    proportional to the store products repriced, plus one pass over the state per day.
    """
    if not isinstance(state, PriceState):
        state = PriceState(state)
    due_index = state.due(tick_at, rules.tick_minutes)
    n = len(due_index)
    if n == 0:
        return empty_changes(), state
    rng = rng_for(seed, TABLE, tick_at.isoformat())
    u_event, noise, u_depth, u_hold = rng.random(n), rng.standard_normal(n), rng.random(n), rng.random(n)

    old = state.price[due_index]
    anchor = state.list_price[due_index]
    locked, promoted = state.locked[due_index], state.promoted[due_index]
    bounds = _bounds(rules, old, state.msrp[due_index], state.unit_cost[due_index])
    hour = tick_at.hour
    market = (RUSH_HOUR if hour in rules.rush_hours
              else LATE_NIGHT if hour in rules.late_night_hours else VOLATILITY)
    hour_adjustment = {RUSH_HOUR: rules.rush_adjustment, LATE_NIGHT: rules.late_night_adjustment,
                       VOLATILITY: 0.0}[market]
    discount = u_event < rules.discount_probability
    surge = ~discount & (u_event < rules.discount_probability + rules.surge_probability)
    reason = np.full(n, market, dtype=np.int8)  # later assignments take precedence
    reason[surge] = SURGE
    reason[discount] = DISCOUNT
    reason[promoted] = PROMOTION_START
    reason[locked] = PROMOTION_END
    start = reason == PROMOTION_START
    starting = np.flatnonzero(start)

    sigma = state.by_class(rules.volatility, due_index) * rules.volatility_scale
    drift = rules.mean_reversion * np.log(anchor / old) + sigma * noise
    lo, hi = rules.discount_depth
    slo, shi = rules.surge_depth
    log_change = drift
    if hour_adjustment:
        log_change[reason != PROMOTION_END] += hour_adjustment
    discounted, surged = np.flatnonzero(reason == DISCOUNT), np.flatnonzero(reason == SURGE)
    log_change[discounted] = np.log1p(-(lo + u_depth[discounted] * (hi - lo)))
    log_change[surged] = np.log1p(slo + u_depth[surged] * (shi - slo))
    raw = np.where(start, anchor, old * np.exp(log_change))
    new = _clip(tick_price_point(raw), bounds)
    if len(starting):
        new[starting] = _clip(anchor[starting], bounds.take(starting, axis=1))

    # A review always moves the price (bar a promotion start at the list price already), so each
    # row is a real change; the move goes the way the market pushed, else back toward the list.
    direction = np.sign(raw - old)
    direction = np.where(direction == 0, np.sign(anchor - old), direction)
    direction = np.where(direction == 0, np.where(u_depth < 0.5, -1.0, 1.0), direction)
    for sign in (1.0, -1.0):
        stuck = np.flatnonzero((new == old) & ~start)
        if not len(stuck):
            break
        new[stuck] = _clip(_neighbour(old[stuck], sign * direction[stuck]), bounds.take(stuck, axis=1))

    hold = _hold_hours(state.by_class(rules.change_rate, due_index), u_hold)
    events = np.flatnonzero((reason == DISCOUNT) | (reason == SURGE))  # a flash discount or surge is short
    hold[events] = -np.log1p(-u_hold[events]) * rules.event_hours
    next_review = _review_after(rules, tick_at, hold)
    if len(starting):
        next_review[starting] = state.promotion_end[due_index[starting]]

    # datetimes as int64 cast in place: building them from numpy datetime64 copies them slowly
    tick = pl.Series("tick_at", np.full(n, _micros(tick_at))).cast(pl.Datetime("us"))
    changes = pl.DataFrame([
        tick,
        pl.Series("store_product_id", state.store_product_id[due_index]),
        pl.Series("old_price", old),
        pl.Series("new_price", new),
        pl.Series("change_pct", np.round((new / old - 1) * 100, 2)),
        _REASON_NAMES.gather(reason),
        tick.alias("valid_from"),
        pl.Series("valid_to", next_review).cast(pl.Datetime("us")),
    ])
    state.review(due_index, tick_at, new, reason, next_review)
    return changes, state


def _bounds(rules: PricingRules, old: np.ndarray, msrp: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per row, the cost-share band and the hard limits (at most the per-tick bound away from the
    old price, above unit cost, at most MSRP), rounded inward to the cent: a (4, n) array for `_clip`,
    worked out once per tick however many candidate prices are clipped to it."""
    low_share, high_share = rules.cost_share
    soft_lo, soft_hi = np.ceil(cost / high_share * 100 - 1e-6) / 100, np.floor(cost / low_share * 100 + 1e-6) / 100
    hard_lo = np.maximum(np.ceil(old * (1 - rules.max_change) * 100 - 1e-6) / 100, np.round(cost + 0.01, 2))
    hard_hi = np.minimum(np.floor(old * (1 + rules.max_change) * 100 + 1e-6) / 100, msrp)
    return np.stack([soft_lo, soft_hi, hard_lo, hard_hi])


def _clip(price: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Clip to the cost-share band, then to the hard limits (`_bounds`), to the cent."""
    soft_lo, soft_hi, hard_lo, hard_hi = bounds
    return np.round(np.clip(np.clip(price, soft_lo, soft_hi), hard_lo, hard_hi), 2)


def apply_changes(state: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """The state after a run of changes (each store product's latest change wins; a change's null
    leaves the value it had), in id order. `state` may hold only some of STATE_SCHEMA's columns
    (the store product's id among them), and `changes` only the CHANGE_SCHEMA columns those need
    (store_product_id and valid_from always).

    Each change finds its row among the state's ids (`shopping.row_of`: a table by id for an xl
    day's millions) and the latest wins by row order, in numpy. Then each updated column is one
    gather from the state's values followed by the changes' (an index per row: its own row, or its
    latest change's), whatever its type: the xl close rebuilt from the lake (7.4M changes of an
    8M-row state) took 0.7-0.85 s against 1.2-1.3 s with the changed values written into copies of
    the columns (a numpy copy per number column, a scatter into the strings). A group-by and a join
    took gigabytes for a moment (the nightly run's peak)."""
    if changes.height == 0:
        return state
    if not changes["valid_from"].is_sorted():  # read tick by tick, they already are
        changes = changes.sort("valid_from", maintain_order=True)
    if not state["store_product_id"].is_sorted():
        state = state.sort("store_product_id")
    n = state.height
    row = shopping.row_of(state["store_product_id"].to_numpy(), changes["store_product_id"].to_numpy())  # -1: not in the state
    known = np.flatnonzero(row >= 0)
    latest = np.full(n, -1, dtype=np.int64)
    np.maximum.at(latest, row[known], known)  # the last change of each row wins
    del row, known
    at = np.flatnonzero(latest >= 0)
    latest = latest[at]
    # row i of the result: row i of the state's values, or row n + j, the latest change j's value
    index = np.arange(n, dtype=np.uint32 if n + changes.height < 2**32 else np.int64)
    index[at] = latest + n
    by_latest = pl.Series(index)
    columns = []
    for column, change in _UPDATED.items():
        if column not in state.columns:
            continue
        values = changes[change].cast(state.schema[column]).rename(column)
        rows = by_latest
        if values.null_count():  # a null change keeps the row's own value
            kept = at[values.is_null().to_numpy()[latest]]
            unchanged = index.copy()
            unchanged[kept] = kept
            rows = pl.Series(unchanged)
        columns.append(pl.concat([state[column], values], rechunk=True).gather(rows))
    return state.with_columns(columns).with_columns(pl.col("store_product_id").set_sorted())


# The state's columns a change updates, and the change's column it takes the value from
_UPDATED = {"price": "new_price", "price_since": "valid_from", "last_reason": "reason", "next_review_at": "valid_to"}


# -- reading prices ---------------------------------------------------------------------------
class _PriceLookup:
    """A day's prices as one sorted int64 key, so that pricing a batch of lines costs one sort of
    the batch and one `searchsorted` instead of joins.

    Every price known for the day is an entry keyed `(store_product_id - low) * width + k`: k is 0
    for the opening price and, for a change, 1 + the rank of its valid_from among the day's change
    moments. The price in effect for a line is the last entry at or below `(its store product -
    low) * width + number of change moments up to it`, when that entry is of the same store
    product. The first entry is a sentinel below every key, of no store product.
    """

    def __init__(self, opening: pl.DataFrame, changes: pl.DataFrame):
        if opening["price"].null_count():
            opening = opening.filter(pl.col("price").is_not_null())
        valid_from = changes["valid_from"].cast(pl.Datetime("us")).to_physical()
        self.moments = valid_from.unique().sort().to_numpy()
        self.width = len(self.moments) + 1
        opening_ids = opening["store_product_id"].cast(pl.Int64).to_numpy()
        change_ids = changes["store_product_id"].cast(pl.Int64).to_numpy()
        # ids outside [low, high] are clipped to an end, where no entry is
        present = [ids for ids in (opening_ids, change_ids) if len(ids)]
        self.low = min(int(ids.min()) for ids in present) - 1 if present else 0
        self.high = max(int(ids.max()) for ids in present) + 1 if present else 0
        if (self.high - self.low + 1) * self.width >= 2 ** 63:
            raise ValueError("store_product_id values span too wide a range to key the day's prices")
        # Filled in place, the opening's entries then the changes', behind the sentinel: few
        # day-sized arrays, as each costs fresh memory.
        split = len(opening_ids) + 1
        key = np.empty(split + len(change_ids), dtype=np.int64)
        key[0] = -1
        np.subtract(opening_ids, self.low, out=key[1:split])
        np.subtract(change_ids, self.low, out=key[split:])
        key[1:] *= self.width
        key[split:] += np.searchsorted(self.moments, valid_from.to_numpy()) + 1
        order = shopping.sorted_with_order(key[1:], (self.high - self.low + 1) * self.width)
        self.key = key
        self.price = np.empty(len(key), dtype=np.float64)
        self.price[0] = np.nan
        np.take(np.concatenate([opening["price"].cast(pl.Float64).to_numpy(),
                                changes["new_price"].cast(pl.Float64).to_numpy()]),
                order, out=self.price[1:], mode="clip")  # "raise" would copy through a buffer

    def _moments_up_to(self, at: np.ndarray) -> np.ndarray:
        """For each epoch microsecond, how many of the day's change moments are at or before it.
        Moments on a regular grid (the ticks') are counted by a division, far cheaper than a
        binary search of each unsorted moment."""
        moments = self.moments
        if len(moments) > 1:
            first, step = int(moments[0]), int(moments[1] - moments[0])
            if step > 0 and first - step > np.iinfo(np.int64).min and bool(np.all(np.diff(moments) == step)):
                counted = np.clip(at, first - step, int(moments[-1]))  # before the first: 0; after the last: all
                counted -= first
                counted //= step
                counted += 1
                return counted
        return np.searchsorted(moments, at, side="right")

    def _entries(self, ids: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For the pairs sorted by key: where each came from, its key, its entry, and whether that
        entry is of its store product (else the store product has no price)."""
        line_key = (np.clip(ids, self.low, self.high) - self.low) * self.width + self._moments_up_to(at)
        # sorted, the search walks the entries in order
        order = shopping.sorted_with_order(line_key, (self.high - self.low + 1) * self.width)
        entry = np.searchsorted(self.key, line_key, side="right") - 1  # never before the sentinel
        priced = self.key[entry] // self.width == line_key // self.width
        return order, line_key, entry, priced

    def price_at(self, ids: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The price in effect for each (store product id, epoch microsecond) pair."""
        order, _, entry, priced = self._entries(ids, at)
        if not priced.all():
            missing = order[~priced]
            first = missing[np.argmin(at[missing])]
            raise KeyError(f"no price for store_product_id {ids[first]}")
        out = np.empty(len(ids), dtype=np.float64)
        out[order] = self.price[entry]
        return out

    def listed_price_at(self, ids: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`price_at` of the pairs whose store product has an opening price (listed that day), and
        which those are (NaN elsewhere): a second search, of the pairs already sorted, for each
        one's opening entry (k 0)."""
        order, line_key, entry, priced = self._entries(ids, at)
        line_key -= line_key % self.width  # the opening's key
        opening = np.minimum(np.searchsorted(self.key, line_key), len(self.key) - 1)
        listed = np.empty(len(ids), dtype=bool)
        listed[order] = priced & (self.key[opening] == line_key)
        out = np.empty(len(ids), dtype=np.float64)
        out[order] = self.price[entry]
        out[~listed] = np.nan
        return out, listed


@dataclass(frozen=True)
class PriceBook:
    """The prices in effect during one business day.

    `opening`: store_product_id, price -- in effect at 00:00 of the day.
    `changes`: store_product_id, valid_from (datetime), new_price -- the day's price ticks.
    """

    business_date: date
    opening: pl.DataFrame
    changes: pl.DataFrame

    @classmethod
    def from_list_prices(cls, business_date: date, store_products: pl.DataFrame) -> "PriceBook":
        """A day on which no tick changed any price: every product sells at its list price."""
        return cls(
            business_date,
            store_products.select("store_product_id", pl.col("list_price").alias("price")),
            pl.DataFrame(schema={"store_product_id": pl.Int64, "valid_from": pl.Datetime("us"),
                                 "new_price": pl.Float64}),
        )

    _building: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def _lookup(self) -> _PriceLookup:
        with self._building:  # built once, by whichever thread asks first
            lookup = self.__dict__.get("_built")
            if lookup is None:
                lookup = _PriceLookup(self.opening, self.changes)
                object.__setattr__(self, "_built", lookup)
            return lookup

    def prepare(self) -> "PriceBook":
        """Build the day's price lookup now rather than at the first `price_at` (so that a caller
        can build it on another thread, beside other work); returns the book."""
        self._lookup
        return self

    def prepare_beside(self) -> None:
        """Start building the lookup on a thread of its own (an xl day's takes half a second, which
        the day's first region would otherwise wait for); a failure is raised again by whatever
        asks for a price."""
        def build() -> None:
            try:
                self.prepare()
            except Exception:  # noqa: BLE001 - raised where a price is asked for
                pass
        threading.Thread(target=build, name="price_lookup", daemon=True).start()

    def price_at(self, store_product_id, at) -> np.ndarray:
        """The price in effect for each (store product, moment) pair; vectorized."""
        ids = pl.Series(store_product_id, dtype=pl.Int64)
        if ids.null_count():
            raise KeyError("no price for store_product_id None")
        return self._lookup.price_at(ids.to_numpy(), _moments(at))

    def listed_price_at(self, store_product_id, at) -> tuple[np.ndarray, np.ndarray]:
        """The price in effect for each pair whose store product is in the opening (NaN for the
        others, a null id among them), and a mask of those pairs."""
        ids = pl.Series(store_product_id, dtype=pl.Int64)
        # an id below every store product's finds no entry of its own
        ids = ids.fill_null(self._lookup.low) if ids.null_count() else ids
        return self._lookup.listed_price_at(ids.to_numpy(), _moments(at))

    def closing(self) -> pl.DataFrame:
        """Prices in effect at the end of the day (tomorrow's opening)."""
        last = self.changes.sort("valid_from").group_by("store_product_id").agg(pl.col("new_price").last())
        return self.opening.join(last, on="store_product_id", how="left").select(
            "store_product_id", pl.coalesce("new_price", "price").alias("price"))


def price_mismatches(lines: pl.DataFrame, book: PriceBook, at: str, unit_price: str = "unit_price",
                     ) -> pl.DataFrame:
    """Sold lines whose unit price is not the price in effect at their timestamp (to the cent).

    `lines` needs store_product_id, the timestamp column `at` and `unit_price`; the result is those
    lines with `price_in_effect` added. Lines of a store product with no price at all also offend.
    """
    if lines.height == 0:
        return lines.with_columns(price_in_effect=pl.lit(None, dtype=pl.Float64))
    # listed: in the opening; a test by the pricing's own search (the lines of a part each time
    # hashed 8M opening ids at xl)
    expected, listed = book.listed_price_at(lines["store_product_id"], lines[at])
    lines = lines.with_columns(price_in_effect=pl.Series(expected, dtype=pl.Float64).fill_nan(None))
    wrong = lines.filter((pl.col(unit_price) - pl.col("price_in_effect")).abs() > 0.005)  # null: not listed
    return pl.concat([wrong, lines.filter(~pl.Series(listed))])
