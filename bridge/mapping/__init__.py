"""Mapping files: loading and validation, rules, templates and BPQL conditions."""
