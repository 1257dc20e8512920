"""Configuration files: what loads, and the messages for every kind of mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tracker.config_load import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_loads_with_every_section():
    config = load_config(ROOT / "config.example.yaml", env={})
    assert config.shops[0].domain == "your-store.myshopify.com"
    assert config.carriers["dhl"].requests_per_second == 1
    assert config.database.url is None
    assert config.polling.in_transit_every == timedelta(hours=4)
    assert config.database.data_dir == ROOT / "data" / "postgres"


def test_missing_default_file_means_all_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={})
    assert config.shops == []
    assert config.web.host == "127.0.0.1"
    assert config.web.port == 8080


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_unknown_key_is_named_with_its_path(tmp_path):
    path = write(tmp_path, "web:\n  host: 127.0.0.1\n  prot: 8080\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"{path}: web.prot: unknown key" in str(caught.value)


def test_wrong_type_is_named_with_its_path(tmp_path):
    path = write(tmp_path, "polling:\n  batch_size: many\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"{path}: polling.batch_size: Input should be a valid integer" in str(caught.value)


def test_missing_required_value_is_named(tmp_path):
    path = write(tmp_path, "shops:\n  - access_token: shpat_x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"{path}: shops.0.domain: required but missing" in str(caught.value)


def test_a_shop_needs_a_token_or_grant_credentials(tmp_path):
    path = write(tmp_path, "shops:\n  - domain: acme.myshopify.com\n    client_id: abc\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert f"{path}: shops.0: needs access_token, or client_id and client_secret" in str(
        caught.value
    )
    path = write(
        tmp_path,
        "shops:\n  - domain: acme.myshopify.com\n    client_id: abc\n    client_secret: s\n",
    )
    assert load_config(path, env={}).shops[0].access_token is None


def test_bad_duration_and_bad_domain_are_explained(tmp_path):
    path = write(
        tmp_path,
        "sync:\n  interval: soon\nshops:\n  - domain: acme.com\n    access_token: x\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "sync.interval: 'soon' is not a duration such as 30s" in message
    assert "shops.0.domain: 'acme.com' is not a shop domain" in message


def test_unknown_carrier_lists_the_known_ones(tmp_path):
    path = write(tmp_path, "carriers:\n  pigeon:\n    api_key: x\n")
    with pytest.raises(ConfigError, match=r"carriers: .*unknown carrier 'pigeon'; known: .*dhl"):
        load_config(path, env={})


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = write(tmp_path, "web:\n  host: [127.0.0.1\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(path, env={})


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path, env={})


def test_environment_overrides_secrets(tmp_path):
    path = write(tmp_path, "shops:\n  - domain: acme.myshopify.com\n    access_token: from-file\n")
    config = load_config(
        path,
        env={
            "TRACKER_SHOPS__0__ACCESS_TOKEN": "shpat_from_env",
            "TRACKER_DATABASE_URL": "postgresql://u:p@db/tracker",
            "TRACKER_CARRIERS__DHL__API_KEY": "dhl-key",
        },
    )
    assert config.shops[0].access_token.get_secret_value() == "shpat_from_env"
    assert config.database.url is not None
    assert config.database.url.get_secret_value() == "postgresql://u:p@db/tracker"
    assert config.carriers["dhl"].api_key is not None


def test_bad_environment_value_names_the_variable(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"TRACKER_WEB__PORT": "eighty"})
    assert "web.port (from TRACKER_WEB__PORT)" in str(caught.value)


def test_secrets_are_not_in_the_repr(tmp_path):
    path = write(
        tmp_path, "shops:\n  - domain: acme.myshopify.com\n    access_token: shpat_s3cret\n"
    )
    config = load_config(path, env={})
    assert "shpat_s3cret" not in repr(config)


def test_duplicate_shops_are_refused(tmp_path):
    shop = "  - domain: acme.myshopify.com\n    access_token: x\n"
    path = write(tmp_path, "shops:\n" + shop + shop)
    with pytest.raises(ConfigError, match="listed twice"):
        load_config(path, env={})
