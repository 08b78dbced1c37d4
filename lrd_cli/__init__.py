"""The ``lrd`` command line: inspect, plan, compress, convert, export, bench, demo."""
