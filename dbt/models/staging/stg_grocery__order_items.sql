select
    order_id,
    line_number,
    store_product_id,
    product_id,
    priced_at,
    quantity_ordered,
    quantity,
    cast(unit_price as decimal(12, 2)) as unit_price,
    cast(discount as decimal(12, 2)) as discount,
    cast(line_total as decimal(12, 2)) as line_total,
    promotion_id,
    promo_code,
    promotion_id is not null as on_promotion,
    item_status,
    substituted_for_store_product_id,
    reordered,
    business_date
from {{ source('grocery', 'order_items') }}
