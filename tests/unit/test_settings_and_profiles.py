"""Config loading: ${ENV} expansion, validation errors that name file and key, mapping profiles."""

from pathlib import Path

import pytest

from resources.onec.profile import load_profile
from resources.settings import ConfigError, expand_env, load_settings


def test_env_expansion_with_defaults():
    env = {"A": "1"}
    assert expand_env({"x": "${A}", "y": ["${B:-two}", "${B}"], "z": 3}, env) == {"x": "1", "y": ["two", ""], "z": 3}


def test_default_config_loads_and_secret_comes_from_env():
    s = load_settings(environ={"ONEC_PASSWORD": "пароль-1", "ONEC_USERNAME": "Бот"})
    assert s.integrations.onec.password.get_secret_value() == "пароль-1"
    assert s.integrations.onec.username == "Бот"
    assert "пароль-1" not in repr(s)  # SecretStr hides it
    assert s.schedules.catalogue_cron == "0 * * * *"
    assert s.schedules.stock_cron == "*/10 * * * *"


def test_bad_value_names_file_and_key(tmp_path: Path):
    cfg = tmp_path / "integrations.yaml"
    cfg.write_text("integrations:\n  onec:\n    page_size: -5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert str(cfg) in str(err.value) and "integrations.onec.page_size" in str(err.value)


def test_unknown_key_is_rejected(tmp_path: Path):
    cfg = tmp_path / "integrations.yaml"
    cfg.write_text("schedules:\n  catalog_cron: '0 * * * *'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="schedules.catalog_cron"):
        load_settings(cfg, environ={})


def test_bad_cron_is_rejected(tmp_path: Path):
    cfg = tmp_path / "integrations.yaml"
    cfg.write_text("schedules:\n  stock_cron: 'every ten minutes'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="stock_cron"):
        load_settings(cfg, environ={})


def test_freshness_windows_load_and_warn_must_come_before_fail(tmp_path: Path):
    s = load_settings(environ={})
    assert (s.schedules.catalogue_freshness.warn_minutes, s.schedules.catalogue_freshness.fail_minutes) == (90, 180)
    assert (s.schedules.stock_freshness.warn_minutes, s.schedules.stock_freshness.fail_minutes) == (20, 60)
    cfg = tmp_path / "integrations.yaml"
    cfg.write_text("schedules:\n  stock_freshness: {warn_minutes: 60, fail_minutes: 30}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="schedules.stock_freshness.*warn_minutes \\(60\\) must be below"):
        load_settings(cfg, environ={})
    cfg.write_text("schedules:\n  catalogue_freshness: {warn_minutes: 0, fail_minutes: 30}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="schedules.catalogue_freshness.warn_minutes"):
        load_settings(cfg, environ={})


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize("name,register,price_key,stock_qty", [
    ("ut11", "InformationRegister_ЦеныНоменклатуры25_RecordType", "ВидЦены_Key", "ВНаличииBalance"),
    ("ut114", "InformationRegister_ЦеныНоменклатуры_RecordType", "ВидЦены_Key", "ВНаличииBalance"),
    ("unf", "InformationRegister_ЦеныНоменклатуры", "ВидЦен_Key", "КоличествоBalance"),
])
def test_shipped_profiles(name, register, price_key, stock_qty):
    p = load_profile(name)
    assert p.prices.register_name == register
    assert p.prices.fields.price_type == price_key
    assert p.stock.fields.quantity == stock_qty
    assert p.products.sku_rule == ["article", "code"]


def test_profile_error_names_file_and_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: bad\nproducts:\n  entity_set: Catalog_Номенклатура\n  fields: {}\n"
                   "  sku_rule: [barcode]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(bad)
    msg = str(err.value)
    assert str(bad) in msg and "products.sku_rule" in msg and "currencies" in msg


def test_profile_extends_cycle(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("extends: b\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("extends: a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        load_profile("a", mappings_dir=tmp_path)
