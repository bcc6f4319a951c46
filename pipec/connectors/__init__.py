"""Built-in components. Each module imports only `pipec.runtime` (and its own client libraries) and is
registered through the `pipec.components` entry point, exactly like a third-party plugin."""
