"""Configuration data (YAML) for belle-rare and the loader that validates it.

The YAML files are data; ``configs.loader`` reads them with ``yaml.safe_load`` and validates
them against pydantic models, so that a wrong key or type is reported with the file and key.
"""

from belle_rare.configs.loader import ConfigError, config_path, load_config

__all__ = ["ConfigError", "config_path", "load_config"]
