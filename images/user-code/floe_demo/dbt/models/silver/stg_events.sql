select
    event_id,
    customer_id,
    event_type,
    cast(event_time as timestamp) as event_time
from {{ source('bronze', 'events') }}
