-- How each store does over the whole window: transactions, revenue, average basket and unique
-- loyalty customers, in store and by delivery.
with stores as (
    select * from {{ ref('stg_grocery__stores') }}
),

transactions as (
    select * from {{ ref('int_sales_transactions') }}
),

per_store as (
    select
        store_id,
        count(distinct business_date) as trading_days,
        count(*) as transactions,
        count(*) filter (where channel = 'IN_STORE') as in_store_receipts,
        count(*) filter (where channel = 'DELIVERY') as delivered_orders,
        sum(net_sales) as net_sales,
        coalesce(sum(net_sales) filter (where channel = 'IN_STORE'), 0) as in_store_net_sales,
        coalesce(sum(net_sales) filter (where channel = 'DELIVERY'), 0) as delivery_net_sales,
        count(distinct customer_id) as unique_customers,
        count(*) filter (where customer_id is null) as anonymous_receipts
    from transactions
    group by store_id
)

select
    s.store_id,
    s.name as store_name,
    s.banner,
    s.profile,
    s.city,
    s.state,
    s.square_feet,
    coalesce(p.trading_days, 0) as trading_days,
    coalesce(p.transactions, 0) as transactions,
    coalesce(p.in_store_receipts, 0) as in_store_receipts,
    coalesce(p.delivered_orders, 0) as delivered_orders,
    coalesce(p.net_sales, 0) as net_sales,
    coalesce(p.in_store_net_sales, 0) as in_store_net_sales,
    coalesce(p.delivery_net_sales, 0) as delivery_net_sales,
    round(p.net_sales / nullif(p.transactions, 0), 2) as average_basket,
    round(p.net_sales / nullif(p.trading_days, 0), 2) as net_sales_per_day,
    round(p.net_sales / nullif(s.square_feet, 0), 2) as net_sales_per_square_foot,
    coalesce(p.unique_customers, 0) as unique_customers,
    coalesce(p.anonymous_receipts, 0) as anonymous_receipts,
    rank() over (order by coalesce(p.net_sales, 0) desc) as net_sales_rank
from stores as s
left join per_store as p using (store_id)
