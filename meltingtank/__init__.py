"""Melting-tank quality from sensor series: KAMP loader, windows, LSTM, thresholds, prediction.

Importing the package stays light (no TensorFlow); `meltingtank.train` and `meltingtank.predict`
load Keras when they need it.
"""
