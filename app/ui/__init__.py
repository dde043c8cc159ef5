"""UI glue shared by the dashboard pages: navigation, cached resources, figures, overlays.

Nothing here does model math or reads file formats: it calls the domain packages and draws.
"""
