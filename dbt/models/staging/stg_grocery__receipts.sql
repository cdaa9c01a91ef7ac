select
    receipt_id,
    store_id,
    customer_id,
    customer_id is not null as is_loyalty_customer,
    receipt_ts,
    trip_type,
    tender_type,
    line_count,
    item_count,
    cast(subtotal as decimal(12, 2)) as subtotal,
    cast(basket_discount as decimal(12, 2)) as basket_discount,
    cast(tax as decimal(12, 2)) as tax,
    cast(total as decimal(12, 2)) as total,
    business_date
from {{ source('grocery', 'receipts') }}
