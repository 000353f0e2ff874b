"""Browser front end helpers for app.py: pure handlers, views, charts, cache, Gradio glue."""
