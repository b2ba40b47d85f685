"""The methods, one folder each, found through `registry`."""
