"""The commands that train nothing, as plain functions that never import Lightning."""
