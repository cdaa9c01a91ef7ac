select
    dc_id,
    name,
    geo_id,
    city,
    state,
    lat,
    lon,
    capacity_cases,
    opened_on,
    business_date
from {{ source('grocery', 'distribution_centers') }}
