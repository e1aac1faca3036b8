"""Each model's math in plain torch (counting, Kneser-Ney, the dense table, the every-suffix
model, the exact optimum) and reading a saved model: no Lightning."""
