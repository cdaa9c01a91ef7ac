select
    truck_id,
    dc_id,
    license_plate,
    refrigerated,
    capacity_cases,
    in_service_on,
    business_date
from {{ source('grocery', 'trucks') }}
