"""Synthetic data for DefectLens: cast impellers with exact defect masks, melting-tank series."""
