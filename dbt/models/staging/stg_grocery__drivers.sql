select
    driver_id,
    first_name,
    last_name,
    home_store_id,
    lat,
    lon,
    vehicle,
    hired_on,
    left_on,
    active,
    business_date
from {{ source('grocery', 'drivers') }}
