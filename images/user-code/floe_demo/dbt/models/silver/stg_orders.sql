select
    order_id,
    customer_id,
    cast(order_date as date) as order_date,
    amount
from {{ source('bronze', 'orders') }}
where amount > 0
