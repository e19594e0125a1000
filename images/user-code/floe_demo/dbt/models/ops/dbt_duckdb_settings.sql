-- What DuckDB really runs with inside dbt: proves the profile's DUCKDB_* settings reached it.
select
    current_setting('memory_limit') as memory_limit,
    current_setting('threads') as threads,
    current_setting('temp_directory') as temp_directory
