-- One row per completed sale in either channel: an in-store receipt or a delivered order.
-- Revenue (net_sales) is after line and basket discounts, before tax, delivery fees and tips;
-- cancelled orders are not sales.
select
    'IN_STORE' as channel,
    receipt_id as transaction_id,
    store_id,
    customer_id,
    business_date,
    line_count,
    item_count,
    subtotal - basket_discount as net_sales,
    basket_discount,
    tax,
    cast(0 as decimal(12, 2)) as delivery_fees,
    total as amount_paid
from {{ ref('stg_grocery__receipts') }}

union all

select
    'DELIVERY' as channel,
    order_id as transaction_id,
    store_id,
    customer_id,
    business_date,
    line_count,
    item_count,
    subtotal - basket_discount as net_sales,
    basket_discount,
    tax,
    delivery_fee as delivery_fees,
    total as amount_paid
from {{ ref('stg_grocery__orders') }}
where status = 'DELIVERED'
