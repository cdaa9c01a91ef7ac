-- Sales per store, business date and channel, built one daily partition at a time: each run
-- replaces the business dates it processes (delete+insert on business_date), so re-running a day
-- after its partition was re-materialized upstream gives the new figures and never duplicates.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='business_date',
    on_schema_change='fail',
) }}

select
    store_id,
    business_date,
    channel,
    count(*) as transactions,
    count(distinct customer_id) as loyalty_customers,
    sum(item_count) as units,
    sum(net_sales) as net_sales,
    sum(basket_discount) as basket_discounts,
    sum(tax) as tax,
    sum(delivery_fees) as delivery_fees,
    sum(amount_paid) as amount_paid
from {{ ref('int_sales_transactions') }}
where {{ business_date_window() }}
group by store_id, business_date, channel
