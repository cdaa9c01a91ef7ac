select
    store_product_id,
    store_id,
    product_id,
    on_hand,
    reorder_point,
    order_up_to,
    business_date
from {{ source('grocery', 'store_inventory') }}
