"""Files shipped with the package and read at run time: Jinja2 templates, gettext
catalogues, data files (pattern families, script overrides, CSS support, the default
cover) and the Alembic migrations. Found through ``newsletter.core.resources``."""
