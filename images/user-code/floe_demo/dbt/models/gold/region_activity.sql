select
    c.region,
    e.event_type,
    cast(e.event_time as date) as activity_date,
    count(*) as events
from {{ ref('stg_events') }} as e
join {{ ref('stg_customers') }} as c using (customer_id)
group by all
