"""Allow ``python -m dukenet``."""

from dukenet.cli import main

main()
