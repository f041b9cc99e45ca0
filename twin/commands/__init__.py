"""One module per `twin` subcommand: its arguments and what it runs."""
