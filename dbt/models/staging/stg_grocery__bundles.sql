select
    bundle_id,
    store_id,
    driver_id,
    dispatched_at,
    returned_at,
    date_diff('minute', dispatched_at, returned_at) as run_minutes,
    order_count,
    route_miles,
    business_date
from {{ source('grocery', 'bundles') }}
