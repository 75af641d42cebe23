"""SQLAlchemy storage: tables, engines, repositories, units of work and migrations."""
