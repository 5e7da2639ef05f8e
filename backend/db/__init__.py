"""The data layer: SQLAlchemy models, engine and session setup, migrations."""
