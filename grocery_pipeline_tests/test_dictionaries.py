"""Dictionaries load through one validator that names the file, row, column and expected form."""

import csv
from pathlib import Path

import pytest

from grocery_pipeline.dictionaries import SPECS, DictionaryError, load_dictionaries


def _rewrite(path: Path, mutate):
    rows = list(csv.reader(path.open(newline="")))
    rows = mutate(rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _set(path: Path, row: int, column: str, value: str):
    def mutate(rows):
        rows[row][rows[0].index(column)] = value
        return rows
    _rewrite(path, mutate)


def test_shipped_dictionaries_are_valid_and_rich_enough(dictionaries):
    assert set(dictionaries.frames) == set(SPECS)
    assert dictionaries.geographies.height >= 300
    assert dictionaries.products.height >= 600
    assert dictionaries.first_names.height >= 200 and dictionaries.last_names.height >= 200
    departments = set(dictionaries.products["department"])
    assert {"Produce", "Dairy & Eggs", "Meat & Seafood", "Bakery", "Deli", "Frozen", "Pantry", "Snacks",
            "Beverages", "Household", "Personal Care", "Baby", "Pet"} <= departments


def test_missing_column_names_file_and_column(dictionaries_copy):
    path = dictionaries_copy / "products.csv"
    _rewrite(path, lambda rows: [r[:-1] for r in rows])  # drop the last column (perishable)
    with pytest.raises(DictionaryError) as error:
        load_dictionaries(dictionaries_copy)
    message = str(error.value)
    assert "products.csv" in message and "'perishable'" in message and "missing" in message


def test_non_numeric_price_names_row_and_column(dictionaries_copy):
    _set(dictionaries_copy / "products.csv", 3, "base_price", "cheap")
    with pytest.raises(DictionaryError) as error:
        load_dictionaries(dictionaries_copy)
    assert "products.csv, row 3, column 'base_price'" in str(error.value)
    assert "not a number" in str(error.value)


def test_duplicate_key_names_both_rows(dictionaries_copy):
    path = dictionaries_copy / "geographies.csv"
    _rewrite(path, lambda rows: rows + [rows[1]])
    with pytest.raises(DictionaryError) as error:
        load_dictionaries(dictionaries_copy)
    message = str(error.value)
    assert "geographies.csv" in message and "duplicate key" in message and "first seen on row 1" in message


def test_blank_required_field(dictionaries_copy):
    _set(dictionaries_copy / "last_names.csv", 5, "last_name", "  ")
    with pytest.raises(DictionaryError, match=r"last_names.csv, row 5, column 'last_name'.*blank"):
        load_dictionaries(dictionaries_copy)


@pytest.mark.parametrize("column, value", [("lat", "123.5"), ("lon", "not-a-lon")])
def test_bad_coordinates(dictionaries_copy, column, value):
    _set(dictionaries_copy / "geographies.csv", 2, column, value)
    with pytest.raises(DictionaryError, match=rf"geographies.csv, row 2, column '{column}'"):
        load_dictionaries(dictionaries_copy)


def test_empty_file(dictionaries_copy):
    (dictionaries_copy / "banners.csv").write_text("")
    with pytest.raises(DictionaryError, match=r"banners.csv: file is empty"):
        load_dictionaries(dictionaries_copy)


def test_header_only_file(dictionaries_copy):
    path = dictionaries_copy / "street_types.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DictionaryError, match=r"street_types.csv: has a header but no data rows"):
        load_dictionaries(dictionaries_copy)


def test_missing_file(dictionaries_copy):
    (dictionaries_copy / "tax_rates.csv").unlink()
    with pytest.raises(DictionaryError, match=r"tax_rates.csv: file not found"):
        load_dictionaries(dictionaries_copy)


def test_jurisdiction_without_tax_rate(dictionaries_copy):
    _rewrite(dictionaries_copy / "tax_rates.csv", lambda rows: rows[:1] + rows[2:])
    with pytest.raises(DictionaryError, match=r"tax_rates.csv.*no rate for jurisdiction"):
        load_dictionaries(dictionaries_copy)


def test_boolean_field_must_be_true_or_false(dictionaries_copy):
    _set(dictionaries_copy / "products.csv", 1, "taxable", "maybe")
    with pytest.raises(DictionaryError, match=r"row 1, column 'taxable'.*true or false"):
        load_dictionaries(dictionaries_copy)
