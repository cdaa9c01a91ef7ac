"""Render the table reference (docs/tables.md) from the schema declarations.

`python -m grocery_pipeline.docs` rewrites it; a test fails when it is out of date.
"""

from __future__ import annotations

import sys

from grocery_pipeline.settings import PROJECT_ROOT
from grocery_pipeline.tables import TABLES

TABLES_DOC = PROJECT_ROOT / "docs" / "tables.md"


def render_tables() -> str:
    lines = [
        "# Tables",
        "",
        "Generated from `grocery_pipeline/tables/` by `python -m grocery_pipeline.docs`; do not edit by hand.",
        "Every table is a Dagster asset `grocery/<table>`, a view `grocery.<table>` in `warehouse.duckdb`",
        "and a dbt source table `source('grocery', '<table>')`.",
        "",
        "| table | group | partitioned by | key | description |",
        "|---|---|---|---|---|",
    ]
    for t in TABLES.values():
        grain = "price tick" if t.partitioning == "price_tick" else "business date"
        lines.append(f"| [`{t.name}`](#{t.name}) | {t.group} | {grain} | {', '.join(t.key)} | {t.description} |")
    for t in TABLES.values():
        lines += ["", f"## {t.name}", "", t.description, "", "| column | type | null | references | description |",
                  "|---|---|---|---|---|"]
        for c in t.columns:
            ref = f"{c.references[0]}.{c.references[1]}" if c.references else ""
            key = " (key)" if c.name in t.key else ""
            lines.append(f"| `{c.name}`{key} | {c.sql_type} | {'yes' if c.nullable else 'no'} | {ref} | {c.description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    TABLES_DOC.parent.mkdir(parents=True, exist_ok=True)
    TABLES_DOC.write_text(render_tables())
    print(f"wrote {TABLES_DOC.relative_to(PROJECT_ROOT)} ({len(TABLES)} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
