select
    shipment_id,
    line_number,
    store_product_id,
    product_id,
    units,
    cases,
    business_date
from {{ source('grocery', 'shipment_lines') }}
