{# A composite key is unique: no two rows share the same values of `columns`. #}
{% test unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
