select
    customer_id,
    first_order_on,
    last_order_on,
    orders_placed,
    habit_product_ids,
    habit_times_bought,
    habit_last_bought_on,
    business_date
from {{ source('grocery', 'delivery_customers') }}
