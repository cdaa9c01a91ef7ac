select
    order_id,
    event_seq,
    status,
    event_ts,
    business_date
from {{ source('grocery', 'order_events') }}
