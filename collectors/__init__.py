"""Collectors: one module per source, each turning a target into `dashboard.core.records.Cycle`s."""
