{#
  The business dates an incremental model processes on this run, as a predicate on `column`.
  Vars start_date / end_date (inclusive, YYYY-MM-DD) choose a window, one day for one partition:
    dbt build -s store_daily_sales --vars '{start_date: 2025-01-05, end_date: 2025-01-05}'
  Without them, an incremental run takes every business date not yet in the model (new days and
  any gap left by earlier windows), and a first (or --full-refresh) run takes them all.
#}
{% macro business_date_window(column='business_date') %}
  {%- set start = grocery_date_var('start_date') -%}
  {%- set end = grocery_date_var('end_date') -%}
  {%- if start is not none and end is not none and start > end -%}
    {{ exceptions.raise_compiler_error("vars start_date (" ~ start ~ ") is after end_date (" ~ end ~ "); expected start_date <= end_date") }}
  {%- endif -%}
  {%- if start is none and end is none -%}
    {%- if is_incremental() -%}
      {{ column }} not in (select distinct business_date from {{ this }})
    {%- else -%}
      true
    {%- endif -%}
  {%- else -%}
    {{ column }} between {{ "date '" ~ start ~ "'" if start is not none else "date '0001-01-01'" }}
                     and {{ "date '" ~ end ~ "'" if end is not none else "date '9999-12-31'" }}
  {%- endif -%}
{% endmacro %}

{% macro grocery_date_var(name) %}
  {%- set value = var(name, none) -%}
  {%- if value is none or value == '' -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set text = value | string -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " is " ~ text ~ "; expected a business date YYYY-MM-DD, e.g. 2025-01-05") }}
  {%- endif -%}
  {{ return(text) }}
{% endmacro %}
