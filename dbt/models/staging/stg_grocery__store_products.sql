select
    store_product_id,
    store_id,
    product_id,
    cast(list_price as decimal(12, 2)) as list_price,
    reorder_point,
    order_up_to,
    initial_on_hand,
    listed_on,
    business_date
from {{ source('grocery', 'store_products') }}
