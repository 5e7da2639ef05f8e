"""The web chat app: static files (plain ES modules, one CSS file, no build step) served at ``/``."""
