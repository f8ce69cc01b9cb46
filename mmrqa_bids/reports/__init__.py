"""HTML reports (jinja2, autoescape on) and the images they embed."""
