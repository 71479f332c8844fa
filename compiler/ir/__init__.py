"""The graph-program IR every pass works on: an FX graph with its constants and symbolic-shape
ranges (`program`), its readable text form (`printer`, `parser`) and Graphviz DOT (`dot`)."""
