"""Tests of qorgan.intel."""
