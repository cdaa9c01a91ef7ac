-- How well each store delivers, per business date: how long orders take from placement to the
-- door, how many arrive inside the promised window, how many are cancelled, how many orders a
-- run carries and how busy the drivers are. Driver utilisation is the share of a standard shift
-- (var driver_shift_hours, default 8) that drivers on duty spend out on runs.
with orders as (
    select * from {{ ref('stg_grocery__orders') }}
),

per_store_orders as (
    select
        store_id,
        business_date,
        count(*) as orders_placed,
        count(*) filter (where status = 'DELIVERED') as orders_delivered,
        count(*) filter (where status = 'CANCELLED') as orders_cancelled,
        round(avg(minutes_to_deliver), 1) as avg_minutes_to_deliver,
        quantile_cont(minutes_to_deliver, 0.5) as median_minutes_to_deliver,
        quantile_cont(minutes_to_deliver, 0.9) as p90_minutes_to_deliver,
        round(avg(case when delivered_in_window then 1.0 when delivered_in_window is not null then 0.0 end), 4)
            as delivered_in_window_share
    from orders
    group by store_id, business_date
),

per_store_runs as (
    select
        store_id,
        business_date,
        count(*) as delivery_runs,
        round(avg(order_count), 2) as orders_per_run,
        round(avg(route_miles), 2) as avg_route_miles,
        count(distinct driver_id) as drivers_on_duty,
        round(sum(run_minutes) / 60.0, 2) as driver_hours_on_runs
    from {{ ref('stg_grocery__bundles') }}
    group by store_id, business_date
)

select
    o.store_id,
    o.business_date,
    o.orders_placed,
    o.orders_delivered,
    o.orders_cancelled,
    round(o.orders_cancelled / o.orders_placed, 4) as cancellation_rate,
    o.avg_minutes_to_deliver,
    o.median_minutes_to_deliver,
    o.p90_minutes_to_deliver,
    o.delivered_in_window_share,
    coalesce(r.delivery_runs, 0) as delivery_runs,
    r.orders_per_run,
    r.avg_route_miles,
    coalesce(r.drivers_on_duty, 0) as drivers_on_duty,
    coalesce(r.driver_hours_on_runs, 0) as driver_hours_on_runs,
    round(r.driver_hours_on_runs / (r.drivers_on_duty * {{ var('driver_shift_hours', 8) }}), 4) as driver_utilisation
from per_store_orders as o
left join per_store_runs as r using (store_id, business_date)
