select
    promotion_id,
    promo_code,
    promotion_type,
    discount_kind,
    discount_value,
    scope,
    product_id,
    department,
    category,
    start_date,
    end_date,
    business_date
from {{ source('grocery', 'promotions') }}
