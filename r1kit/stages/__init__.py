"""One module per `r1kit` command; each holds `Config` and `run(config)`."""
