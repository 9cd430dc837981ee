"""The bottom layer: values, models and helpers every room shares. Imports nothing above it."""
