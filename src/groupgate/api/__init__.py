"""The aiohttp application: one module per surface, problem+json errors in `problems`.

`create_app(config, service)` builds the application; `build_app(config)` also opens the
store and loads the data files (what `groupgate serve` runs). Only this package imports
aiohttp.
"""

from groupgate.api.app import STATE, build_app, create_app

__all__ = ["STATE", "build_app", "create_app"]
