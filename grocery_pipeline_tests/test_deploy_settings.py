"""The lake location setting (`lake_url` / GROCERY_LAKE_URL) and the shipped production instance file."""

import pytest
import yaml

from grocery_pipeline.settings import PROJECT_ROOT, SettingsError, load_settings


def test_lake_defaults_to_the_data_directory(tmp_path):
    settings = load_settings(env={}, data_dir=tmp_path)
    assert settings.lake_dir == tmp_path / "lake"


def test_lake_url_accepts_a_local_path_and_a_file_url(tmp_path):
    assert load_settings(env={"GROCERY_LAKE_URL": str(tmp_path / "shared")}).lake_dir == tmp_path / "shared"
    assert load_settings(env={"GROCERY_LAKE_URL": f"file://{tmp_path}/my%20lake"}).lake_dir == tmp_path / "my lake"


def test_lake_url_does_not_change_the_data(tmp_path):
    here, there = load_settings(env={}), load_settings(env={"GROCERY_LAKE_URL": str(tmp_path)})
    assert here.fingerprint() == there.fingerprint()


@pytest.mark.parametrize("url", ["s3://grocery-lake/prod", "gs://grocery-lake/prod", "az://lake/prod"])
def test_an_object_store_url_is_accepted_but_written_through_a_mount(url):
    settings = load_settings(env={"GROCERY_LAKE_URL": url})
    assert settings.lake_url == url
    with pytest.raises(SettingsError, match=r"'lake_url'.*object store.*docs/deployment.md"):
        settings.lake_dir  # noqa: B018 - a run asks for it before writing anything


@pytest.mark.parametrize("url, expected", [
    ("s3:///prefix", "names no bucket"),
    ("ftp://host/lake", "unknown scheme 'ftp'"),
    ("file://otherhost/lake", "remote host"),
])
def test_a_bad_lake_url_fails_naming_the_setting(url, expected):
    with pytest.raises(SettingsError, match=rf"setting 'lake_url'.*{expected}"):
        load_settings(env={"GROCERY_LAKE_URL": url})


def test_production_instance_names_the_psycopg2_driver_and_limits_runs_and_pools():
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 2
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    helm = yaml.safe_load((PROJECT_ROOT / "deploy" / "helm" / "values.yaml").read_text())
    assert helm["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm["concurrency"]["pools"]["defaultLimit"] == config["concurrency"]["pools"]["default_limit"]


def test_production_instance_passes_dagsters_own_validation(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://dagster@127.0.0.1:5432/dagster")
    config, _ = dagster_instance_config(str(PROJECT_ROOT / "deploy"))
    assert config["concurrency"]["pools"]["default_limit"] == 1
