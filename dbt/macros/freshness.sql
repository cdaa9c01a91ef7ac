{#
  `_loaded_at` is simulated time, and a generated window usually lies in the past, so measuring it
  against the wall clock would call every table stale. Freshness is measured against the
  simulated present instead: the end of the newest business date in the calendar. A table is
  then fresh when it has caught up with the rest of the warehouse, which is what an analyst wants
  to know before building on the latest day. Set var freshness_as_of to wall_clock for a live
  deployment, or to a timestamp to ask "was the warehouse fresh at that moment?".
#}
{% macro duckdb__collect_freshness(source, loaded_at_field, filter) %}
  {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
    select
      max({{ loaded_at_field }}) as max_loaded_at,
      {{ grocery_clock() }} as snapshotted_at
    from {{ source }}
    {% if filter %}
    where {{ filter }}
    {% endif %}
  {% endcall %}
  {{ return(load_result('collect_freshness')) }}
{% endmacro %}

{% macro grocery_clock() %}
  {%- set as_of = var('freshness_as_of', 'latest_business_date') -%}
  {%- if as_of == 'latest_business_date' -%}
    (select max(business_date) + interval 1 day from {{ builtins.source('grocery', 'calendar') }})::timestamp
  {%- elif as_of == 'wall_clock' -%}
    {{ current_timestamp() }}::timestamp
  {%- else -%}
    cast('{{ as_of }}' as timestamp)
  {%- endif -%}
{% endmacro %}
