select
    receipt_id,
    line_number,
    store_product_id,
    product_id,
    priced_at,
    quantity,
    cast(unit_price as decimal(12, 2)) as unit_price,
    cast(discount as decimal(12, 2)) as discount,
    cast(line_total as decimal(12, 2)) as line_total,
    promotion_id,
    promo_code,
    promotion_id is not null as on_promotion,
    business_date
from {{ source('grocery', 'receipt_lines') }}
