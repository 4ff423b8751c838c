"""The first stage: the YAML config file, read and checked once into frozen dataclasses.

`load` reads and checks the file (every mistake one `ConfigError` naming its field), `model`
holds what it hands on: a `Config` that every later stage trusts as it is. `fields` holds the
typed readers that the web config file (exporter.web.webconfig) shares; `peer_tls` reads the
files of `push.peer_tls` into the TLS context forwards use.
"""
