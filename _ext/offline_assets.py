"""Keep the built HTML free of CDN references.

Jupyter Book 1 always loads sphinx-thebe, which writes the address of the thebe
bundle on a CDN into every page, even when live code (thebe) is off, as it is
in this book. This extension removes those two script tags, so that the pages
load nothing from the network (MathJax is served locally, see _config.yml).
"""


def _is_thebe(filename, attributes) -> bool:
    return "THEBE_JS_URL" in str(attributes.get("body", "")) or str(filename or "").endswith("sphinx-thebe.js")


def _drop_thebe_scripts(app, env, docnames):
    # The HTML builder re-adds every registered script before writing, so the
    # scripts are removed from the registry as well as from the builder.
    app.registry.js_files[:] = [(f, a) for f, a in app.registry.js_files if not _is_thebe(f, a)]
    files = getattr(app.builder, "_js_files", None)
    if files is not None:
        files[:] = [js for js in files if not _is_thebe(js.filename, js.attributes)]


def setup(app):
    # Priority 900: after sphinx-thebe's own handler (500) has added its scripts.
    app.connect("env-before-read-docs", _drop_thebe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
