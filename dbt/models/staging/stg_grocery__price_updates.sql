select
    tick_at,
    store_product_id,
    cast(old_price as decimal(12, 2)) as old_price,
    cast(new_price as decimal(12, 2)) as new_price,
    change_pct,
    reason,
    valid_from,
    valid_to,
    business_date
from {{ source('grocery', 'price_updates') }}
