select
    shipment_id,
    event_seq,
    truck_id,
    status,
    status_ts,
    business_date
from {{ source('grocery', 'truck_moves') }}
