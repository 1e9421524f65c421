"""Collectors: one module per source, each turning a target into `dashboard.store.records.Cycle`s."""
