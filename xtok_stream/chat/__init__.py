"""Conversations: each model renders a sample's ``messages`` in its own chat template.

    messages (JSON) -> render per model (text, ids, content spans, loss mask)   render.py
                    -> pack whole conversations into seq_len                     pack.py
                    -> teachers: own render, content aligned, template by role   teacher.py

``config.py`` holds the ``chat:`` block of the pipeline YAML, ``messages.py`` the parsing and
validation of one sample's messages.
"""
