"""Application-wide configuration."""
