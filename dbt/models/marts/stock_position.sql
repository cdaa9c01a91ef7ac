-- Every store product at the end of every business date: stock on hand, what sold and shrank
-- that day, average daily demand over the trailing 7 days and the days of cover it leaves.
with closing_stock as (
    select * from {{ ref('stg_grocery__store_inventory') }}
),

movements as (
    select
        store_product_id,
        business_date,
        -sum(quantity) filter (where txn_type in ('SALE', 'ONLINE_SALE')) as units_sold,
        -sum(quantity) filter (where txn_type = 'SHRINK') as units_shrunk,
        sum(quantity) filter (where txn_type = 'RECEIVING') as units_received
    from {{ ref('stg_grocery__store_inventory_txn') }}
    group by store_product_id, business_date
),

daily as (
    select
        c.store_product_id,
        c.store_id,
        c.product_id,
        c.business_date,
        c.on_hand,
        c.reorder_point,
        c.order_up_to,
        coalesce(m.units_sold, 0) as units_sold,
        coalesce(m.units_shrunk, 0) as units_shrunk,
        coalesce(m.units_received, 0) as units_received
    from closing_stock as c
    left join movements as m using (store_product_id, business_date)
)

select
    d.*,
    round(avg(d.units_sold) over trailing_week, 2) as avg_daily_units_sold_7d,
    round(d.on_hand / nullif(avg(d.units_sold) over trailing_week, 0), 1) as days_of_cover,
    d.on_hand = 0 as stocked_out,
    d.on_hand <= d.reorder_point as at_or_below_reorder_point,
    d.units_shrunk * p.unit_cost as shrink_cost
from daily as d
join (select product_id, unit_cost from {{ ref('stg_grocery__products') }}) as p using (product_id)
window trailing_week as (
    partition by d.store_product_id order by d.business_date rows between 6 preceding and current row
)
