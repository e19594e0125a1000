select
    customer_id,
    trim(customer_name) as customer_name,
    region,
    signup_date
from {{ source('bronze', 'customers') }}
where customer_id is not null
