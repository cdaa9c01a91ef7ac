select
    txn_id,
    dc_id,
    product_id,
    txn_type,
    quantity,
    txn_ts,
    reference_id,
    business_date
from {{ source('grocery', 'dc_inventory_txn') }}
