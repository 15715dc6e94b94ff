"""Kidney-genetics backend (sample application used as dbkit's test subject).

Kept import-free so that light-weight consumers such as ``app.db.objects``
can be loaded without pulling in SQLAlchemy.
"""
