-- Stock health per store and business date: how many products are out of stock or due for
-- replenishment, how many days of demand the shelves cover, how much stock is lost to shrink,
-- and how many delivery lines customers could not get.
with positions as (
    select * from {{ ref('stock_position') }}
),

per_store as (
    select
        store_id,
        business_date,
        count(*) as store_products,
        count(*) filter (where stocked_out) as products_stocked_out,
        count(*) filter (where at_or_below_reorder_point) as products_at_reorder_point,
        sum(on_hand) as units_on_hand,
        sum(units_sold) as units_sold,
        sum(units_shrunk) as units_shrunk,
        sum(units_received) as units_received,
        sum(shrink_cost) as shrink_cost,
        quantile_cont(days_of_cover, 0.5) as median_days_of_cover
    from positions
    group by store_id, business_date
),

unfilled_delivery_lines as (
    select o.store_id, i.business_date, count(*) as out_of_stock_order_lines
    from {{ ref('stg_grocery__order_items') }} as i
    join {{ ref('stg_grocery__orders') }} as o using (order_id)
    where i.item_status = 'OUT_OF_STOCK'
    group by o.store_id, i.business_date
)

select
    s.store_id,
    s.business_date,
    s.store_products,
    s.products_stocked_out,
    round(s.products_stocked_out / s.store_products, 4) as stockout_rate,
    s.products_at_reorder_point,
    s.units_on_hand,
    s.units_sold,
    s.units_received,
    s.units_shrunk,
    round(s.units_shrunk / nullif(s.units_sold + s.units_shrunk, 0), 4) as shrink_rate,
    s.shrink_cost,
    s.median_days_of_cover,
    coalesce(u.out_of_stock_order_lines, 0) as out_of_stock_order_lines
from per_store as s
left join unfilled_delivery_lines as u using (store_id, business_date)
