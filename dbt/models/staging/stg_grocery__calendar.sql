select
    date,
    day_of_week,
    day_name,
    is_weekend,
    holiday_name,
    season,
    traffic_multiplier,
    business_date
from {{ source('grocery', 'calendar') }}
