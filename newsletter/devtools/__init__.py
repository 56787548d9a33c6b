"""Tools for trying the product without services: the demo, its example issue and list."""
