"""Database objects that live outside the ORM models (see ``objects``)."""
