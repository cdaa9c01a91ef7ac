-- The incremental model holds, for every business date it has processed, exactly the revenue of
-- that date's receipts and delivered orders: no partition missed, none counted twice.
with processed as (
    select business_date, sum(net_sales) as net_sales, sum(transactions) as transactions
    from {{ ref('store_daily_sales') }}
    group by business_date
),

expected as (
    select business_date, sum(net_sales) as net_sales, count(*) as transactions
    from (
        select business_date, subtotal - basket_discount as net_sales from {{ ref('stg_grocery__receipts') }}
        union all
        select business_date, subtotal - basket_discount from {{ ref('stg_grocery__orders') }}
        where status = 'DELIVERED'
    )
    group by business_date
)

select p.business_date, p.net_sales, e.net_sales as expected_net_sales, p.transactions, e.transactions as expected_transactions
from processed as p
left join expected as e using (business_date)
where e.business_date is null or p.net_sales <> e.net_sales or p.transactions <> e.transactions
