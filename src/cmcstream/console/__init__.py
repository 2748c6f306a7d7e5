"""The stream commands of the ``cmcstream`` CLI: ``tail`` and ``record``."""
