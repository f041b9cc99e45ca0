"""The twin as an OpenAI-compatible HTTP API (`twin serve`): chat completions from the
reply engine, for the chat front-ends and bridges that speak that API."""
