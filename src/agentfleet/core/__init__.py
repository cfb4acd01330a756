"""The pure engine: data in, actions out. Nothing here reads a clock, a file or the network."""
