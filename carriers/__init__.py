"""Carrier adapters: one package per carrier, all following :mod:`carriers.base`."""
