select
    store_product_id,
    store_id,
    product_id,
    cast(price as decimal(12, 2)) as price,
    price_since,
    last_reason,
    next_review_at,
    promotion_until,
    cast(list_price as decimal(12, 2)) as list_price,
    cast(msrp as decimal(12, 2)) as msrp,
    cast(unit_cost as decimal(12, 2)) as unit_cost,
    volatility_class,
    business_date
from {{ source('grocery', 'price_snapshots') }}
