"""Builders of real public corpora installed from Debian packages."""
