"""Tests of the ORM models, the JSON column schemas and the migrations."""
