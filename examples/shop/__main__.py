"""Start one process of the shop: `python -m shop <service>` (run.py does this for each).

Services are imported as `shop.<name>` rather than run as `__main__`, so recorded exception
types read `shop.inventory.CacheUnavailable`, not `__main__.CacheUnavailable`.
"""

from __future__ import annotations

import importlib
import sys

from shop import config


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in config.SERVICES:
        sys.exit(f"usage: python -m shop {{{','.join(config.SERVICES)}}}")
    importlib.import_module(f"shop.{sys.argv[1]}").main()


if __name__ == "__main__":
    main()
