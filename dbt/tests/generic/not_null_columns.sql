{#
  None of `columns` holds a null, checked in one scan of the model; fails with one row per column
  that does, and how many null rows it has.
#}
{% test not_null_columns(model, columns) %}
with null_counts as (
    select
    {%- for column in columns %}
        count(*) filter (where {{ adapter.quote(column) }} is null) as nulls_{{ loop.index }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
)
{% for column in columns %}
select '{{ column }}' as column_name, nulls_{{ loop.index }} as null_rows from null_counts where nulls_{{ loop.index }} > 0
{{ "union all" if not loop.last }}
{%- endfor %}
{% endtest %}
