-- How much the same product's shelf price differs across the stores that carry it, per business
-- date: the opening price of every store (price_snapshots) and how often it was repriced that day.
with opening_prices as (
    select * from {{ ref('stg_grocery__price_snapshots') }}
),

products as (
    select product_id, product_name, department, category, base_price, msrp
    from {{ ref('stg_grocery__products') }}
),

repricings as (
    select
        pu.business_date,
        sp.product_id,
        count(*) as price_changes
    from {{ ref('stg_grocery__price_updates') }} as pu
    join {{ ref('stg_grocery__store_products') }} as sp using (store_product_id)
    group by pu.business_date, sp.product_id
),

per_product as (
    select
        business_date,
        product_id,
        count(*) as stores_carrying,
        min(price) as min_price,
        max(price) as max_price,
        round(avg(price), 2) as mean_price,
        round(stddev_samp(price), 4) as price_stddev
    from opening_prices
    group by business_date, product_id
)

select
    pp.business_date,
    pp.product_id,
    p.product_name,
    p.department,
    p.category,
    p.base_price,
    p.msrp,
    pp.stores_carrying,
    pp.min_price,
    pp.max_price,
    pp.mean_price,
    pp.price_stddev,
    pp.max_price - pp.min_price as price_range,
    round((pp.max_price - pp.min_price) / nullif(pp.mean_price, 0), 4) as price_spread_share,
    round(pp.price_stddev / nullif(pp.mean_price, 0), 4) as coefficient_of_variation,
    coalesce(r.price_changes, 0) as price_changes
from per_product as pp
join products as p using (product_id)
left join repricings as r using (business_date, product_id)
