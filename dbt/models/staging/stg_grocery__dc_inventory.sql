select
    dc_id,
    product_id,
    on_hand,
    reorder_point,
    order_up_to,
    business_date
from {{ source('grocery', 'dc_inventory') }}
