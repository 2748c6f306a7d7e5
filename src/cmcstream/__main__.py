"""``python -m cmcstream``."""

from cmcstream.cli import main

main()
