select
    bundle_id,
    stop_seq,
    order_id,
    arrival_ts,
    miles_from_previous,
    business_date
from {{ source('grocery', 'bundle_stops') }}
