select
    txn_id,
    store_id,
    store_product_id,
    product_id,
    txn_type,
    quantity,
    txn_ts,
    reference_id,
    business_date
from {{ source('grocery', 'store_inventory_txn') }}
