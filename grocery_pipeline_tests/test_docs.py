"""The documentation stays true: generated references are current, the README names everything."""

from dataclasses import fields
from pathlib import Path

from grocery_pipeline.docs import TABLES_DOC, render_tables
from grocery_pipeline.settings import Settings
from grocery_pipeline.tables import TABLES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_table_reference_is_generated_from_the_current_schemas():
    assert TABLES_DOC.read_text() == render_tables(), "run: python -m grocery_pipeline.docs"


def test_readme_names_every_table():
    text = README.read_text()
    missing = [name for name in TABLES if f"`{name}`" not in text]
    assert not missing, f"README does not document tables: {missing}"


def test_readme_documents_every_setting():
    text = README.read_text()
    missing = [f.name for f in fields(Settings) if f"`{f.name}`" not in text]
    assert not missing, f"README does not document settings: {missing}"


def test_readme_documents_every_environment_variable_the_code_reads():
    import re

    package = README.parent / "grocery_pipeline"
    used = set()
    for path in package.rglob("*.py"):
        used |= set(re.findall(r"\"(GROCERY_[A-Z_]+)\"", path.read_text()))
    text = README.read_text()
    missing = sorted(v for v in used if v not in text)
    assert not missing, f"README does not document: {missing}"
