-- What a basket looks like, per business date and channel: lines and items per basket, basket
-- value, the share of lines on promotion and (for delivery, where the customer's history is
-- known) the share of lines the customer had bought before. Cancelled orders and undelivered
-- lines are not baskets.
with baskets as (
    select * from {{ ref('int_sales_transactions') }}
),

in_store_lines as (
    select business_date, receipt_id as basket_id, on_promotion, cast(null as boolean) as reordered
    from {{ ref('stg_grocery__receipt_lines') }}
),

delivery_lines as (
    select i.business_date, i.order_id as basket_id, i.on_promotion, i.reordered
    from {{ ref('stg_grocery__order_items') }} as i
    join baskets as b on b.channel = 'DELIVERY' and b.transaction_id = i.order_id
    where i.quantity > 0
),

lines as (
    select 'IN_STORE' as channel, * from in_store_lines
    union all
    select 'DELIVERY' as channel, * from delivery_lines
),

per_basket_day as (
    select
        business_date,
        channel,
        count(*) as baskets,
        round(avg(item_count), 2) as items_per_basket,
        round(avg(net_sales), 2) as average_basket_value,
        sum(net_sales) as net_sales
    from baskets
    group by business_date, channel
),

per_line_day as (
    select
        business_date,
        channel,
        count(*) as lines,
        round(avg(case when on_promotion then 1.0 else 0.0 end), 4) as promotion_line_share,
        round(avg(case when reordered then 1.0 when reordered is not null then 0.0 end), 4) as reorder_rate
    from lines
    group by business_date, channel
)

select
    b.business_date,
    b.channel,
    b.baskets,
    l.lines,
    round(l.lines / b.baskets, 2) as lines_per_basket,
    b.items_per_basket,
    b.average_basket_value,
    b.net_sales,
    l.promotion_line_share,
    l.reorder_rate
from per_basket_day as b
join per_line_day as l using (business_date, channel)
