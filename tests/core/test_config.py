import pytest

from imagegen import Client, ConfigurationError, MissingCredentialsError, load_config

GOOD = """
default = "reliable"

[providers.tinyplug]
model = "tiny-1"
api_key = "env:TINY_KEY"

[providers.backup]
plugin = "tinyplug"

[routes.reliable]
chain = ["tinyplug", "backup"]

[cache]
backend = "memory"

[budget]
daily_usd = 5.0
"""


def write(tmp_path, text, name="imagegen.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_is_read_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, GOOD)
    config = load_config()
    assert config.default == "reliable"
    assert config.routes["reliable"].chain == ["tinyplug", "backup"]
    assert config.providers["backup"]["plugin"] == "tinyplug"
    assert config.budget.daily_usd == 5.0


def test_env_overrides_file_and_arguments_override_env(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("IMAGEGEN_DEFAULT", "backup")
    monkeypatch.setenv("IMAGEGEN_PROVIDERS__TINYPLUG__BASE_URL", "http://127.0.0.1:9")
    config = load_config(path)
    assert config.default == "backup"
    assert config.providers["tinyplug"]["base_url"] == "http://127.0.0.1:9"
    assert config.providers["tinyplug"]["model"] == "tiny-1"
    assert load_config(path, default="tinyplug").default == "tinyplug"


def test_config_env_variable_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_CONFIG", str(write(tmp_path, GOOD, "other.toml")))
    assert load_config().source.endswith("other.toml")


@pytest.mark.parametrize("text,match", [
    ("colour = 'red'", "colour: unknown key"),
    ("[cache]\nbackend = 'floppy'", "cache.backend"),
    ("[budget]\ndaily_usd = -1", "budget.daily_usd"),
    ("[routes.r]\nchain = []", "routes.r.chain"),
    ("default = ", "cannot be read"),
])
def test_bad_files_are_errors(tmp_path, text, match):
    with pytest.raises(ConfigurationError, match=match):
        load_config(write(tmp_path, text))


def test_literal_secret_in_file_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match='api_key = "env:VARIABLE_NAME"'):
        load_config(write(tmp_path, '[providers.x]\napi_key = "sk-123"'))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_unknown_provider_key_is_checked_by_the_plugin(tinyplug, tmp_path):
    path = write(tmp_path, "[providers.tinyplug]\nmodle = 'tiny-1'")
    with pytest.raises(ConfigurationError, match="providers.tinyplug.modle: unknown key"):
        Client(path)


def test_route_naming_nothing_is_an_error(tinyplug):
    with pytest.raises(ConfigurationError, match="routes.r.chain names 'ghost'"):
        Client({"routes": {"r": {"chain": ["ghost"]}}})


def test_unknown_plugin_is_an_error(tinyplug):
    with pytest.raises(ConfigurationError, match="no provider plugin named 'nosuch'"):
        Client({"providers": {"p": {"plugin": "nosuch"}}})


def test_env_secret_reference_names_the_variable(tinyplug, tmp_path):
    client = Client(write(tmp_path, GOOD))
    with pytest.raises(MissingCredentialsError, match="set TINY_KEY"):
        client.generate("x", provider="tinyplug")


def test_env_secret_reference_is_resolved(tinyplug, tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_KEY", "s3cret-value")
    client = Client(write(tmp_path, GOOD))
    provider = client.provider("tinyplug")
    assert provider.api_key.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(provider.settings) and "s3cret-value" not in repr(provider)
