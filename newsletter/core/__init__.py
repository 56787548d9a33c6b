"""The base layer: what every other package may use and nothing here may import from them."""
